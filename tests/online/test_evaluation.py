"""The incremental job (``online.evaluation``, its state in ``online.state``): runs over
parts of the logs add up to one run over all of them, reruns add nothing, it counts what the
batch functions count, reads the request-log topic, and runs one at a time."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ingest.events import Watch, parse_line
from ingest.journal import Journal
from online import evaluation, online_report, totals
from online.conversion import user_outcomes
from online.logreader import to_frame
from online.settings import Settings
from online.stream import read_journal

TOPIC = "movielog"
WINDOW = timedelta(hours=24)
DAY = 24 * 60
A, B = "alpha+2001", "beta+2002"


def comparable(data_dir: Path) -> dict:
    document = json.loads((data_dir / "online" / online_report.METRICS_JSON).read_text())
    return {k: document[k] for k in ("groups", "pending", "watermark", "rejected")}


def test_incremental_runs_add_up_to_one_run_and_reruns_add_nothing(
    tmp_path: Path,
    write_segment: Callable[..., int],
    simulated: Callable[..., tuple[list[bytes], list[tuple[datetime, bytes]]]],
    append_log: Callable[[Path, list[tuple[datetime, bytes]]], None],
    job_settings: Callable[..., Settings],
) -> None:
    lines, log = simulated()
    whole, parts = tmp_path / "whole", tmp_path / "parts"

    write_segment(whole, lines)
    append_log(whole, log)
    once = evaluation.run(job_settings(whole))

    thirds = [0, len(lines) // 3, 2 * len(lines) // 3, len(lines)]
    first_offset = logged = 0
    for lo, hi in itertools.pairwise(thirds):  # each run sees the next third of both logs
        first_offset = write_segment(parts, lines[lo:hi], first_offset)
        until = parse_line(lines[hi - 1]).time
        upto = next((i for i in range(logged, len(log)) if log[i][0] > until), len(log))
        append_log(parts, log[logged:upto])
        logged = upto
        evaluation.run(job_settings(parts))
    assert logged == len(log)
    assert comparable(parts) == comparable(whole)
    pd.testing.assert_frame_equal(
        pd.read_parquet(job_settings(parts).users_path),
        pd.read_parquet(job_settings(whole).users_path),
    )

    again = evaluation.run(job_settings(parts))
    assert again["read"] == {"watches": 0, "stream_recommendations": 0, "request_log_file_lines": 0}
    assert comparable(parts) == comparable(whole)

    # Non-trivial: both variants and the stream convert, windows are still open at the end,
    # strays were counted.
    groups = {(g["version"], g["variant"]): g for g in comparable(whole)["groups"]}
    assert set(groups) == {
        ("v-control", "control"),
        ("v-treatment", "treatment"),
        ("unknown", "stream"),
        ("none", "none"),
    }
    for key in [("v-control", "control"), ("v-treatment", "treatment"), ("unknown", "stream")]:
        assert 0 < groups[key]["conversions"] < groups[key]["recommendations"]
    assert groups[("none", "none")]["availability"] == 0.0
    assert once["pending"] > 0 and once["closed"] > 0
    assert once["rejected"]["bad_json"] == sum(1 for _, line in log if not line.startswith(b"{"))


def test_a_repeat_across_a_run_boundary_counts_once(
    tmp_path: Path,
    at: Callable[[float], datetime],
    service_line: Callable[..., bytes],
    write_segment: Callable[..., int],
    event_lines: Callable[[Iterable[Any]], list[bytes]],
    append_log: Callable[[Path, list[tuple[datetime, bytes]]], None],
    job_settings: Callable[..., Settings],
) -> None:
    """A's window closes in the first run, its repeat B's only in the second: B must still
    be recognised as a repeat of A."""
    append_log(
        tmp_path, [(at(0), service_line(1, 200, at(0))), (at(0.5), service_line(1, 200, at(0.5)))]
    )
    offset = write_segment(
        tmp_path, event_lines([Watch(at(10), 1, B, 0), Watch(at(DAY + 0.25), 2, A, 0)])
    )
    first = evaluation.run(job_settings(tmp_path))
    assert (first["closed"], first["pending"]) == (1, 1)
    write_segment(tmp_path, event_lines([Watch(at(3 * DAY), 2, A, 1)]), offset)
    second = evaluation.run(job_settings(tmp_path))
    assert (second["closed"], second["pending"]) == (1, 0)
    (group,) = comparable(tmp_path)["groups"]
    assert (group["requests"], group["recommendations"], group["conversions"]) == (2, 1, 1)


def test_the_job_counts_what_the_batch_functions_count(
    tmp_path: Path,
    write_segment: Callable[..., int],
    simulated: Callable[..., tuple[list[bytes], list[tuple[datetime, bytes]]]],
    append_log: Callable[[Path, list[tuple[datetime, bytes]]], None],
    job_settings: Callable[..., Settings],
) -> None:
    """Closed windows judged incrementally == the join over every log at once."""
    lines, log = simulated(days=3, seed=9)
    write_segment(tmp_path, lines)
    append_log(tmp_path, log)
    evaluation.run(job_settings(tmp_path))

    stream = read_journal(Journal(tmp_path, TOPIC), {})
    recs = pd.concat([stream.recommendations, to_frame(line for _, line in log)], ignore_index=True)
    closed = recs[recs["time"] + WINDOW <= stream.max_time]
    batch = totals.online_metrics(closed, stream.watches, WINDOW).reset_index()
    groups = {(g["version"], g["variant"]): g for g in comparable(tmp_path)["groups"]}
    fields = ["recommendations", "conversions", "minutes", "position_sum", "users"]
    for row in batch.to_dict("records"):
        assert {f: groups[(row["version"], row["variant"])][f] for f in fields} == {
            f: row[f] for f in fields
        }
    outcomes = user_outcomes(closed, stream.watches, WINDOW)
    pd.testing.assert_frame_equal(pd.read_parquet(job_settings(tmp_path).users_path), outcomes)


def test_the_job_reads_the_request_log_topic(
    tmp_path: Path,
    bootstrap: str,
    topic: str,
    at: Callable[[float], datetime],
    service_line: Callable[..., bytes],
    write_segment: Callable[..., int],
    event_lines: Callable[[Iterable[Any]], list[bytes]],
) -> None:
    from kafka import KafkaProducer

    write_segment(tmp_path, event_lines([Watch(at(600), 7, B, 0)]))
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for user in (7, 8):
            producer.send(topic, key=b"%d" % user, value=service_line(user, 200, at(0)))
        producer.flush()
    finally:
        producer.close()
    settings = Settings(
        data_dir=tmp_path,
        stream_recommendations=False,
        request_log_kafka_bootstrap=bootstrap,
        request_log_kafka_topic=topic,
    )
    first = evaluation.run(settings)
    assert first["read"]["request_log_kafka_records"] == 2
    assert evaluation.run(settings)["read"]["request_log_kafka_records"] == 0
    (group,) = json.loads((tmp_path / "online" / online_report.METRICS_JSON).read_text())["groups"]
    assert (group["requests"], group["recommendations"]) == (2, 0)  # windows still open
    assert group["personalisation"] == 0.0  # both got the same list


def test_one_run_at_a_time(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with evaluation.exclusive(settings.out_dir), pytest.raises(RuntimeError, match="another"):
        evaluation.run(settings)
    assert evaluation.run(settings)["groups"] == 0  # an empty data directory is no error
