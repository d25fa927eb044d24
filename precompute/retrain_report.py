"""The retrain's run report: what serves now, what was tried, what the gate decided and why,
what was published and verified, and how long each step took.

The last step of ``dags/recsys_retrain.py``. Everything comes from the records the steps
keep (the snapshot's manifest, the registry's metadata and decision log, Redis's version
metadata) plus what the orchestrator passes in (the publish and verify results, per-task
durations), so the report is also right when it is written again on a retry. It is written
to ``$RECSYS_DATA_DIR/reports/<run_id>.md`` and ``.json`` and logged. Lives here because it
reads both the training side (registry) and the serving side (Redis), as precompute does.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict, Unpack

from ingest.snapshot import open_store
from precompute import steps
from precompute.settings import Settings
from training.registry import ModelRegistry

log = logging.getLogger(__name__)

REPORTS = "reports"


class RunFacts(TypedDict):
    """What the orchestrator knows of a run and passes in (the rest is read from records)."""

    run_id: str
    dry_run: bool
    snapshot_id: str
    candidates: list[str]
    published: dict | None
    verified: dict | None
    tasks: list[dict]


def write_run_report(
    *,
    task_order: list[str] | None = None,
    settings: Settings | None = None,
    **facts: Unpack[RunFacts],
) -> dict:
    """Gather the run's report (see the module doc), write it as markdown and JSON, log it.

    ``candidates`` are the model versions the run trained; ``published`` and ``verified`` the
    results of ``steps.finalize`` and ``verify.verify_published`` (None when publishing
    was skipped); ``tasks`` the finished task instances (task_id, map_index, state, duration),
    listed in the DAG's ``task_order`` (task IDs) when given.
    """
    settings = settings or Settings.from_env()
    rank = {task_id: i for i, task_id in enumerate(task_order or [])}
    facts["tasks"] = sorted(
        facts["tasks"], key=lambda t: (rank.get(t["task_id"], len(rank)), t["map_index"])
    )
    report = gather(settings, **facts)
    text = markdown(report)
    directory = settings.data_dir / REPORTS
    directory.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.+:-]", "_", facts["run_id"])
    report["files"] = {
        "markdown": str(_write(directory / f"{name}.md", text)),
        "json": str(directory / f"{name}.json"),
    }
    _write(directory / f"{name}.json", json.dumps(report, indent=2) + "\n")
    log.info("run report (%s):\n%s", report["files"]["markdown"], text)
    return report


def gather(settings: Settings, **facts: Unpack[RunFacts]) -> dict:
    """The report as one JSON-able dict."""
    run_id, dry_run, candidates = facts["run_id"], facts["dry_run"], facts["candidates"]
    snapshot_id, published, verified = facts["snapshot_id"], facts["published"], facts["verified"]
    tasks = facts["tasks"]
    registry = ModelRegistry(settings.data_dir)
    decided = {d["candidate"]: d for d in registry.decisions() if d["candidate"] in candidates}
    rows = []
    for version in candidates:
        meta = registry.meta(version)
        decision = decided.get(version, {})
        popularity = meta.evaluation.get("popularity", {})
        production = meta.evaluation.get("production") or {}
        rows.append(
            {
                "version": version,
                "algorithm": meta.algorithm,
                "fit_seconds": meta.fit_seconds,
                "metrics": meta.metrics,
                "metric": decision.get("metric"),
                "popularity_score": popularity.get(decision.get("metric")),
                "production_score": decision.get("production_score"),
                "production_compared": production.get("version"),
                "passed": decision.get("passed", False),
                "chosen": decision.get("chosen", False),
                "promoted": decision.get("promoted", False),
                "reasons": decision.get("reasons", ["no gate decision recorded"]),
            }
        )
    manifest = open_store(settings.data_dir).manifest(snapshot_id)
    production = registry.production()
    live = steps.status(settings)
    serving = None
    if live["active"]:
        meta = live["meta"]
        serving = {
            "version": live["active"],
            "model_version": meta.get("model_version"),
            "algorithm": meta.get("algorithm"),
            "snapshot_id": meta.get("snapshot_id"),
            "published_at": meta.get("published_at"),
            "users": int(meta["users"]) if meta.get("users") else None,
        }
    chosen = next((row["version"] for row in rows if row["chosen"]), None)
    return {
        "run_id": run_id,
        "dry_run": dry_run,
        "written_at": datetime.now(UTC).isoformat(),
        "outcome": _outcome(dry_run, chosen, published, serving),
        "serving": serving,
        "production_model": production.version if production else None,
        "snapshot": {
            "id": manifest.snapshot_id,
            "created_at": manifest.created_at,
            "rows": manifest.rows,
            "rejected": sum(manifest.rejected.values()),
            "suspect": manifest.suspect,
        },
        "candidates": rows,
        "chosen": chosen,
        "published": published,
        "verified": verified,
        "tasks": [
            {
                "task": task["task_id"]
                + (f"[{task['map_index']}]" if task["map_index"] >= 0 else ""),
                "state": task.get("state"),
                "seconds": None if task.get("duration") is None else round(task["duration"], 1),
            }
            for task in tasks
        ],
    }


def _outcome(
    dry_run: bool, chosen: str | None, published: dict | None, serving: dict | None
) -> str:
    now = f"{serving['version']} ({serving['model_version']})" if serving else "nothing"
    if dry_run:
        would = f"{chosen} would have been promoted" if chosen else "no candidate would pass"
        return f"dry run: {would}; nothing changed, {now} serves"
    if published:
        return f"published {published['version']} ({chosen}) to {published['users']} users"
    return f"no candidate passed the gate: {now} keeps serving"


def markdown(report: dict) -> str:
    """The report for people: a few lines and two tables."""
    serving = report["serving"]
    snapshot = report["snapshot"]
    lines = [
        f"# Retrain {report['run_id']}{' (dry run)' if report['dry_run'] else ''}",
        "",
        f"**{report['outcome']}**",
        "",
        "- serving: "
        + (
            f"{serving['version']}: model {serving['model_version']} ({serving['algorithm']}), "
            f"{serving['users']} users, published {serving['published_at']}"
            if serving
            else "nothing is published"
        ),
        f"- production model (registry): {report['production_model'] or 'none'}",
        f"- snapshot {snapshot['id']}: "
        + ", ".join(f"{n} {name}" for name, n in snapshot["rows"].items())
        + f", {snapshot['rejected']} lines rejected{', SUSPECT' if snapshot['suspect'] else ''}",
    ]
    if report["verified"]:
        verified = report["verified"]
        lines.append(
            f"- verified {verified['version']}: {verified['users']} users' lists in Redis"
            + (
                f", {verified['service_users']} through {verified['service_url']}"
                if verified["service_url"]
                else ""
            )
        )
    lines += [
        "",
        "| candidate | algorithm | gate metric | score | popularity | production | fit s | "
        "decision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["candidates"]:
        metric = row["metric"]
        lines.append(
            f"| {row['version']} | {row['algorithm']} | {metric} | "
            f"{_number(row['metrics'].get(metric))} | {_number(row['popularity_score'])} | "
            f"{_number(row['production_score'])} | {row['fit_seconds']} | {_verdict(row)} |"
        )
    lines.append("")
    for row in report["candidates"]:
        lines.append(f"- {row['version']}: " + "; ".join(row["reasons"]))
    if report["tasks"]:
        lines += ["", "| task | state | seconds |", "|---|---|---|"]
        lines += [f"| {t['task']} | {t['state']} | {t['seconds']} |" for t in report["tasks"]]
    return "\n".join(lines) + "\n"


def _verdict(row: dict) -> str:
    if row["promoted"]:
        return "promoted"
    if row["chosen"]:
        return "would be promoted"
    return "passed, not best" if row["passed"] else "refused"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
