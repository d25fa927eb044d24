"""One incremental run of the online evaluation: new logs in, updated metrics out.

Each run

1. reads what arrived since the last run: new journal segments (watches, the stream's
   recommendation lines), new request-log lines from files and/or Kafka;
2. adds every new request to the request totals at once (availability and latency do not
   wait for anything);
3. judges the exposure candidates (new ones plus those still pending) against the first
   watches of the whole stream and the recent watch events, and counts those whose window has
   closed: ``time + window <= watermark``, the latest event time the stream has shown (so a
   stream that lags behind the request log holds windows open rather than closing them
   early);
4. keeps the rest pending, drops watch events no open window can reach, and commits the new
   state atomically (``online.state``); then writes the report, ``totals.json`` and the
   Prometheus file, and pushes to a Pushgateway if one is configured.

Reading the same input twice is impossible by construction (positions advance only with the
commit), so re-running adds nothing, and splitting the logs over several runs gives the same
totals as one run over all of them, as long as events arrive roughly in time order: a watch
that reaches the journal after the window it belongs to has closed, or a recommendation
logged more than a window late, is judged with what was there when its window closed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ingest.journal import Journal
from online import conversion, frames, online_report, totals
from online.logreader import read_files, read_kafka
from online.settings import Settings
from online.state import State
from online.stream import read_journal

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"


def run(settings: Settings | None = None) -> dict[str, Any]:
    """Run once; returns a small summary (what was read, what is pending, the groups)."""
    settings = settings or Settings.from_env()
    with exclusive(settings.out_dir):
        return _run(settings)


def _run(settings: Settings) -> dict[str, Any]:
    state = State.load(settings.out_dir)
    new, watches, read = _read_new(settings, state)
    state.totals = totals.add_totals(state.totals, totals.request_totals(new))
    state.histogram = totals.add_histograms(state.histogram, totals.latency_histogram(new))
    state.served = totals.merge_served(state.served, totals.served_lists(new))
    state.starts = conversion.merge_first_watches(state.starts, conversion.first_watches(watches))
    closed = _close_windows(state, new, watches, settings)
    state.runs += 1
    state.save(settings.out_dir)

    summary = totals.summarise(
        state.totals, state.histogram, state.per_version, state.served, settings.reference_list
    )
    _write_users(settings.users_path, conversion.collapse_versions(state.per_version))
    pending = int((~state.pending["resolved"]).sum())
    info = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "watermark": None if state.watermark is None else state.watermark.isoformat(),
        "window_hours": settings.window.total_seconds() / 3600,
        "dedup_seconds": settings.dedup.total_seconds(),
        "pending": pending,
        "runs": state.runs,
        "rejected": dict(state.rejected),
        "read": read,
        "closed": closed,
    }
    push = (settings.pushgateway_url, settings.push_job) if settings.pushgateway_url else None
    document = online_report.write_outputs(settings.out_dir, summary, info, push)
    log.info("online evaluation: read %s, closed %d, pending %d", read, closed, pending)
    return {k: v for k, v in document.items() if k != "groups"} | {"groups": len(summary)}


def _read_new(settings: Settings, state: State) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """New recommendations and watches since the positions in ``state``, which it advances
    (in memory: they are committed with the rest of the state); moves the watermark."""
    journal = Journal(settings.data_dir, settings.stream_topic)
    stream = read_journal(
        journal, state.journal.get(settings.stream_topic, {}), settings.stream_assign()
    )
    state.journal[settings.stream_topic] = stream.positions
    if stream.max_time is not None and (
        state.watermark is None or stream.max_time > state.watermark
    ):
        state.watermark = stream.max_time
    parts = [stream.recommendations] if settings.stream_recommendations else []
    read = {"watches": len(stream.watches), "stream_recommendations": sum(map(len, parts))}
    if settings.request_log_paths:
        files = read_files(settings.request_log_paths, state.files)
        state.files = files.positions
        state.rejected.update(files.rejected)
        parts.append(files.requests)
        read["request_log_file_lines"] = len(files.requests)
    if settings.request_log_kafka_bootstrap:
        topic = settings.request_log_kafka_topic
        kafka = read_kafka(settings.request_log_kafka_bootstrap, topic, state.kafka.get(topic, {}))
        state.kafka[topic] = kafka.positions
        state.rejected.update(kafka.rejected)
        parts.append(kafka.requests)
        read["request_log_kafka_records"] = len(kafka.requests)
    new = pd.concat(parts, ignore_index=True) if parts else frames.empty_recommendations()
    return new, stream.watches, read


def _close_windows(
    state: State, new: pd.DataFrame, new_watches: pd.DataFrame, settings: Settings
) -> int:
    """Judge pending and new exposures, count those whose window has closed, keep the rest
    (and what a later repeat or an open window may still need); returns how many closed."""
    window, dedup = pd.Timedelta(settings.window), pd.Timedelta(settings.dedup)
    watches = pd.concat([state.watches, new_watches], ignore_index=True)
    candidates = new[(new["status"] == 200) & new["user"].notna()].assign(resolved=False)
    pending = pd.concat([state.pending, candidates], ignore_index=True)
    judged = conversion.judge(pending, state.starts, watches, window, dedup)
    if state.watermark is None:  # no stream yet: no window can be known to be closed
        closing = pd.Series(False, index=pending.index)
    else:
        closing = ~pending["resolved"] & (pending["time"] + window <= state.watermark)
    closed, closed_judged = pending[closing], judged[closing]
    state.totals = totals.add_totals(state.totals, totals.conversion_totals(closed, closed_judged))
    state.per_version = conversion.merge_version_outcomes(
        state.per_version, conversion.version_outcomes(closed, closed_judged)
    )
    pending = pending.assign(resolved=pending["resolved"] | closing)
    if state.watermark is not None:
        cutoff = state.watermark - window  # every open window starts after this
        pending = pending[~pending["resolved"] | (pending["time"] > cutoff - dedup)]
        watches = watches[watches["time"] >= cutoff]
    state.pending = pending.reset_index(drop=True)
    state.watches = watches.reset_index(drop=True)
    return int(closing.sum())


@contextlib.contextmanager
def exclusive(out_dir: Path) -> Iterator[None]:
    """One run at a time per output directory (the DAG and a hand-run CLI could overlap):
    a second run would read the same positions and commit over the first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / LOCK_FILE).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"another online evaluation run holds {out_dir / LOCK_FILE}"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_users(path: Path, users: pd.DataFrame) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    users.to_parquet(tmp, index=False)
    tmp.replace(path)
