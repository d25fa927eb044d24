"""The recommender's Grafana dashboard as code (grafanalib).

    make dashboard                                           # rewrite grafana/recsys.json
    .venv-deploy/bin/python monitoring/dashboard.py --check  # fail if the JSON is out of date
    .venv-deploy/bin/python monitoring/dashboard.py --exprs  # every panel query, one a line

Import ``grafana/recsys.json`` into Grafana (Dashboards > Import), or provision it from a
ConfigMap. ``make rules-test`` parses every panel query with promtool (scripts/rules-test.sh).
Metric names are those of service/prom.py and ingest/prom.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    OPS_FORMAT,
    PERCENT_UNIT_FORMAT,
    SECONDS_FORMAT,
    Dashboard,
    GridPos,
    RowPanel,
    Stat,
    Table,
    Target,
    Template,
    Templating,
    TimeSeries,
)

OUT = Path(__file__).resolve().with_name("grafana") / "recsys.json"
DS = "${datasource}"
RECOMMEND = 'route="/recommend/<userid>"'


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, instant=instant)


def series(title, y, x, targets, *, unit="", w=12, h=8, description=""):
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DS,
        targets=targets,
        gridPos=GridPos(h=h, w=w, x=x, y=y),
        unit=unit,
    )


def stat(title, y, x, expr, *, unit="", w=6, h=4, description=""):
    return Stat(
        title=title,
        description=description,
        dataSource=DS,
        targets=[target(expr, instant=True)],
        gridPos=GridPos(h=h, w=w, x=x, y=y),
        format=unit,
        reduceCalc="lastNotNull",
    )


def build() -> Dashboard:
    lat = "recsys_service_request_duration_seconds_bucket"
    panels = [
        RowPanel(title="Service", gridPos=GridPos(h=1, w=24, x=0, y=0)),
        stat(
            "Replicas up",
            1,
            0,
            'sum(up{job="recsys-service"})',
            description="Replicas Prometheus scrapes successfully (alert: RecsysServiceDown)",
        ),
        stat(
            "p99 latency /recommend (5m)",
            1,
            6,
            f"histogram_quantile(0.99, sum by (le) (rate({lat}{{{RECOMMEND}}}[5m])))",
            unit=SECONDS_FORMAT,
        ),
        stat(
            "5xx ratio (5m)",
            1,
            12,
            'sum(rate(recsys_service_requests_total{status=~"5.."}[5m]))'
            " / sum(rate(recsys_service_requests_total[5m]))",
            unit=PERCENT_UNIT_FORMAT,
        ),
        stat(
            "Fallback ratio (5m)",
            1,
            18,
            "sum(rate(recsys_service_fallbacks_total[5m]))"
            f" / sum(rate(recsys_service_requests_total{{{RECOMMEND}}}[5m]))",
            unit=PERCENT_UNIT_FORMAT,
        ),
        series(
            "Request rate by route",
            5,
            0,
            [target("sum by (route) (rate(recsys_service_requests_total[1m]))", "{{route}}")],
            unit=OPS_FORMAT,
        ),
        series(
            "Responses by status code",
            5,
            12,
            [target("sum by (status) (rate(recsys_service_requests_total[1m]))", "{{status}}")],
            unit=OPS_FORMAT,
        ),
        series(
            "/recommend latency percentiles",
            13,
            0,
            [
                target(
                    f"histogram_quantile({q}, sum by (le) (rate({lat}{{{RECOMMEND}}}[1m])))",
                    f"p{round(q * 100)}",
                    ref,
                )
                for q, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))
            ],
            unit=SECONDS_FORMAT,
        ),
        series(
            "Fallbacks by cause, cold-start answers, Redis errors",
            13,
            12,
            [
                target(
                    "sum by (cause) (rate(recsys_service_fallbacks_total[1m]))",
                    "fallback {{cause}}",
                    "A",
                ),
                target("sum(rate(recsys_service_cold_start_answers_total[1m]))", "cold start", "B"),
                target(
                    "sum by (error) (rate(recsys_service_redis_errors_total[1m]))",
                    "redis {{error}}",
                    "C",
                ),
                target("max(recsys_service_redis_breaker_open)", "breaker open", "D"),
            ],
            unit=OPS_FORMAT,
        ),
        RowPanel(title="Model", gridPos=GridPos(h=1, w=24, x=0, y=21)),
        Table(
            title="Model version answering, by variant",
            dataSource=DS,
            targets=[
                target(
                    "max by (variant, version) (recsys_service_model_version_info)",
                    "{{variant}} {{version}}",
                    instant=True,
                )
            ],
            gridPos=GridPos(h=6, w=12, x=0, y=22),
        ),
        series(
            "Recommendations age by variant (stale after 30 h)",
            22,
            12,
            [
                target(
                    "max by (variant) (recsys_service_recommendations_age_seconds)",
                    "{{variant}}",
                    "A",
                ),
                target("max(ingest_last_snapshot_age_seconds)", "newest snapshot", "B"),
            ],
            unit=SECONDS_FORMAT,
            h=6,
        ),
        RowPanel(title="Ingest", gridPos=GridPos(h=1, w=24, x=0, y=28)),
        series(
            "Consumer lag by partition",
            29,
            0,
            [target("sum by (partition) (ingest_consumer_lag)", "partition {{partition}}")],
            w=8,
        ),
        series(
            "Accepted events by kind, rejected lines by reason",
            29,
            8,
            [
                target("sum by (kind) (rate(ingest_events_total[5m]))", "{{kind}}", "A"),
                target(
                    "sum by (reason) (rate(ingest_rejected_total[5m]))",
                    "rejected {{reason}}",
                    "B",
                ),
            ],
            unit=OPS_FORMAT,
            w=8,
        ),
        series(
            "Reject ratio (15m vs 1d)",
            29,
            16,
            [
                target("recsys:ingest_reject_ratio:rate15m", "15m", "A"),
                target("recsys:ingest_reject_ratio:rate1d", "1d", "B"),
            ],
            unit=PERCENT_UNIT_FORMAT,
            w=8,
        ),
        series(
            "Batch write p99, seconds since last batch",
            37,
            0,
            [
                target(
                    "histogram_quantile(0.99,"
                    " sum by (le) (rate(ingest_batch_write_seconds_bucket[5m])))",
                    "batch write p99",
                    "A",
                ),
                target(
                    "time() - max(ingest_last_batch_timestamp_seconds)", "since last batch", "B"
                ),
            ],
            unit=SECONDS_FORMAT,
        ),
        series(
            "Broker connect and commit failures",
            37,
            12,
            [
                target("sum(rate(ingest_connect_failures_total[5m]))", "connect failures", "A"),
                target("sum(rate(ingest_commit_failures_total[5m]))", "commit failures", "B"),
            ],
            unit=OPS_FORMAT,
        ),
    ]
    return Dashboard(
        title="Movie recommender",
        uid="recsys-overview",
        description="Lookup service, model freshness and the ingest consumer",
        tags=["recsys"],
        timezone="utc",
        refresh="30s",
        templating=Templating(
            list=[
                Template(
                    name="datasource",
                    label="Data source",
                    query="prometheus",
                    type="datasource",
                    default="Prometheus",
                )
            ]
        ),
        panels=panels,
    ).auto_panel_ids()


def render() -> str:
    return json.dumps(build().to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True) + "\n"


def exprs(data: dict) -> list[str]:
    """Every panel query of a rendered dashboard."""
    found = []
    for panel in data.get("panels", []):
        found += [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
    return found


def main(argv: list[str]) -> None:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            sys.exit(f"{OUT} is out of date: run .venv-deploy/bin/python monitoring/dashboard.py")
        print(f"{OUT.name} up to date ({len(exprs(json.loads(text)))} queries)")
    elif "--exprs" in argv:
        print("\n".join(exprs(json.loads(text))))
    else:
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(text)
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
