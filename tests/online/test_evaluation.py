"""The incremental job (``online.evaluation``, its state in ``online.state``): runs over
parts of the logs add up to one run over all of them, reruns add nothing, it counts what the
batch functions count, reads the request-log topic, and runs one at a time."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
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
    tmp_path: Path, job: Any
) -> None:
    whole, parts = job.on(tmp_path / "whole"), job.on(tmp_path / "parts")

    lines, log = whole.simulate()
    once = evaluation.run(whole.settings())

    thirds = [0, len(lines) // 3, 2 * len(lines) // 3, len(lines)]
    first_offset = logged = 0
    for lo, hi in itertools.pairwise(thirds):  # each run sees the next third of both logs
        first_offset = parts.stream(lines[lo:hi], first_offset)
        until = parse_line(lines[hi - 1]).time
        upto = next((i for i in range(logged, len(log)) if log[i][0] > until), len(log))
        parts.log(log[logged:upto])
        logged = upto
        evaluation.run(parts.settings())
    assert logged == len(log)
    assert comparable(parts.data_dir) == comparable(whole.data_dir)
    pd.testing.assert_frame_equal(
        pd.read_parquet(parts.settings().users_path),
        pd.read_parquet(whole.settings().users_path),
    )

    again = evaluation.run(parts.settings())
    assert again["read"] == {"watches": 0, "stream_recommendations": 0, "request_log_file_lines": 0}
    assert comparable(parts.data_dir) == comparable(whole.data_dir)

    # Non-trivial: both variants and the stream convert, windows are still open at the end,
    # strays were counted.
    groups = {(g["version"], g["variant"]): g for g in comparable(whole.data_dir)["groups"]}
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


def test_a_repeat_across_a_run_boundary_counts_once(job: Any) -> None:
    """A's window closes in the first run, its repeat B's only in the second: B must still
    be recognised as a repeat of A."""
    at = job.at
    job.log(
        [(at(0), job.service_line(1, 200, at(0))), (at(0.5), job.service_line(1, 200, at(0.5)))]
    )
    offset = job.events([Watch(at(10), 1, B, 0), Watch(at(DAY + 0.25), 2, A, 0)])
    first = evaluation.run(job.settings())
    assert (first["closed"], first["pending"]) == (1, 1)
    job.events([Watch(at(3 * DAY), 2, A, 1)], offset)
    second = evaluation.run(job.settings())
    assert (second["closed"], second["pending"]) == (1, 0)
    (group,) = comparable(job.data_dir)["groups"]
    assert (group["requests"], group["recommendations"], group["conversions"]) == (2, 1, 1)


def test_the_job_counts_what_the_batch_functions_count(job: Any) -> None:
    """Closed windows judged incrementally == the join over every log at once."""
    _, log = job.simulate(days=3, seed=9)
    evaluation.run(job.settings())

    stream = read_journal(Journal(job.data_dir, TOPIC), {})
    recs = pd.concat([stream.recommendations, to_frame(line for _, line in log)], ignore_index=True)
    closed = recs[recs["time"] + WINDOW <= stream.max_time]
    batch = totals.online_metrics(closed, stream.watches, WINDOW).reset_index()
    groups = {(g["version"], g["variant"]): g for g in comparable(job.data_dir)["groups"]}
    fields = ["recommendations", "conversions", "minutes", "position_sum", "users"]
    for row in batch.to_dict("records"):
        assert {f: groups[(row["version"], row["variant"])][f] for f in fields} == {
            f: row[f] for f in fields
        }
    outcomes = user_outcomes(closed, stream.watches, WINDOW)
    pd.testing.assert_frame_equal(pd.read_parquet(job.settings().users_path), outcomes)


def test_the_job_reads_the_request_log_topic(job: Any, bootstrap: str, topic: str) -> None:
    from kafka import KafkaProducer

    job.events([Watch(job.at(600), 7, B, 0)])
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for user in (7, 8):
            producer.send(topic, key=b"%d" % user, value=job.service_line(user, 200, job.at(0)))
        producer.flush()
    finally:
        producer.close()
    settings = Settings(
        data_dir=job.data_dir,
        stream_recommendations=False,
        request_log_kafka_bootstrap=bootstrap,
        request_log_kafka_topic=topic,
    )
    first = evaluation.run(settings)
    assert first["read"]["request_log_kafka_records"] == 2
    assert evaluation.run(settings)["read"]["request_log_kafka_records"] == 0
    (group,) = comparable(job.data_dir)["groups"]
    assert (group["requests"], group["recommendations"]) == (2, 0)  # windows still open
    assert group["personalisation"] == 0.0  # both got the same list


def test_one_run_at_a_time(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with evaluation.exclusive(settings.out_dir), pytest.raises(RuntimeError, match="another"):
        evaluation.run(settings)
    assert evaluation.run(settings)["groups"] == 0  # an empty data directory is no error
