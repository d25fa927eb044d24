"""The job's outputs: ``metrics.json``, ``report.md`` and a Prometheus text file.

The text file (``metrics.prom``) is for node_exporter's textfile collector or any scraper of
files; with a Pushgateway URL the same registry is also pushed. Gauges are labelled by model
version and A/B variant; a rate that is undefined (no recommendation closed yet) is left out
rather than exported as 0, which would read as "nothing converts".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from online.state import write_atomic
from online.totals import QUANTILES

METRICS_JSON = "metrics.json"
REPORT_MD = "report.md"
PROMETHEUS_FILE = "metrics.prom"
LABELS = ["version", "variant"]
# column -> (gauge name, help)
GAUGES = {
    "requests": ("recsys_online_requests", "Recommendation requests read from the logs"),
    "availability": ("recsys_online_availability", "Share of requests answered with status 200"),
    "recommendations": (
        "recsys_online_recommendations",
        "Deduplicated status-200 recommendations whose conversion window has closed",
    ),
    "conversion_rate": (
        "recsys_online_conversion_rate",
        "Share of closed recommendations after which the user started a recommended movie",
    ),
    "users": ("recsys_online_users", "Users with at least one closed recommendation"),
    "user_conversion_rate": (
        "recsys_online_user_conversion_rate",
        "Share of users who started a recommended movie after at least one recommendation",
    ),
    "minutes_per_recommendation": (
        "recsys_online_watched_minutes_per_recommendation",
        "Minutes watched of started recommended movies within the window, per recommendation",
    ),
    "mean_position": (
        "recsys_online_watched_position_mean",
        "Mean 1-based list position of the recommended movie the user started first",
    ),
    "personalisation": (
        "recsys_online_personalisation",
        "Share of users whose latest list differs from the reference (most common) list",
    ),
}


def records(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """One JSON-safe dict per (version, variant); NaN becomes null."""
    rows = []
    for row in summary.reset_index().to_dict("records"):
        rows.append({k: _plain(v) for k, v in row.items()})
    return rows


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_outputs(
    out_dir: Path, summary: pd.DataFrame, info: dict[str, Any], push: tuple[str, str] | None
) -> dict[str, Any]:
    """Write the three files (each atomically); ``push``: (Pushgateway URL, job name)."""
    document = {**info, "groups": records(summary)}
    write_atomic(out_dir / METRICS_JSON, json.dumps(document, indent=1, sort_keys=True) + "\n")
    write_atomic(out_dir / REPORT_MD, markdown(document))
    registry = registry_for(document)
    write_to_textfile(str(out_dir / PROMETHEUS_FILE), registry)
    if push is not None:
        url, job = push
        push_to_gateway(url, job=job, registry=registry)
    return document


def registry_for(document: dict[str, Any]) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauges = {
        column: Gauge(name, text, LABELS, registry=registry)
        for column, (name, text) in GAUGES.items()
    }
    latency = Gauge(
        "recsys_online_latency_ms",
        "Request latency percentiles logged by the service (histogram bins 1 % wide)",
        [*LABELS, "quantile"],
        registry=registry,
    )
    for group in document["groups"]:
        labels = [group["version"], group["variant"]]
        for column, gauge in gauges.items():
            if group.get(column) is not None:
                gauge.labels(*labels).set(group[column])
        for q in QUANTILES:
            value = group.get(f"latency_p{q}_ms")
            if value is not None:
                latency.labels(*labels, str(q / 100)).set(value)
    Gauge(
        "recsys_online_pending_recommendations",
        "Recommendations whose conversion window is still open",
        registry=registry,
    ).set(document["pending"])
    rejected = Gauge(
        "recsys_online_rejected_lines",
        "Request-log lines skipped as malformed, by reason (cumulative)",
        ["reason"],
        registry=registry,
    )
    for reason, count in document["rejected"].items():
        rejected.labels(reason).set(count)
    if document["watermark"] is not None:
        Gauge(
            "recsys_online_watermark_timestamp_seconds",
            "Latest event time seen in the stream: windows ending before it are closed",
            registry=registry,
        ).set(pd.Timestamp(document["watermark"]).timestamp())
    Gauge(
        "recsys_online_last_run_timestamp_seconds",
        "When the online evaluation job last finished",
        registry=registry,
    ).set(pd.Timestamp(document["generated_at"]).timestamp())
    return registry


def markdown(document: dict[str, Any]) -> str:
    columns = [
        ("version", "version", "{}"),
        ("variant", "variant", "{}"),
        ("requests", "requests", "{}"),
        ("availability", "availability", "{:.2%}"),
        ("latency_p50_ms", "p50 ms", "{:.1f}"),
        ("latency_p95_ms", "p95 ms", "{:.1f}"),
        ("latency_p99_ms", "p99 ms", "{:.1f}"),
        ("recommendations", "closed recs", "{}"),
        ("conversion_rate", "conversion", "{:.2%}"),
        ("users", "users", "{}"),
        ("user_conversion_rate", "user conversion", "{:.2%}"),
        ("minutes_per_recommendation", "min/rec", "{:.2f}"),
        ("mean_position", "mean position", "{:.2f}"),
        ("personalisation", "personalised", "{:.2%}"),
    ]
    lines = [
        "# Online evaluation",
        "",
        f"Generated {document['generated_at']}; stream watermark {document['watermark']}; "
        f"conversion window {document['window_hours']:g} h; repeats within "
        f"{document['dedup_seconds']:g} s count once; {document['pending']} recommendations "
        "still inside their window.",
        "",
        "| " + " | ".join(title for _, title, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for group in document["groups"]:
        cells = [
            "–" if group.get(key) is None else fmt.format(group[key]) for key, _, fmt in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if not document["groups"]:
        lines.append("| " + " | ".join("–" for _ in columns) + " |")
    lines += [
        "",
        "A recommendation converts when its user starts watching (first minute ever) a listed "
        "movie within the window; personalisation is the share of users whose latest list "
        "differs from the list most users got in that version and variant (or the configured "
        "reference list). Definitions: `online/conversion.py`, `online/totals.py`.",
        "",
        f"Malformed request-log lines skipped (all runs): {dict(document['rejected']) or 0}.",
        "",
    ]
    return "\n".join(lines)
