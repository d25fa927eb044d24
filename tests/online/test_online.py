"""Online evaluation on real parts: request-log lines written by the service's own writer,
watches in real journal segments, the request-log topic on the Tansu broker, the DAG under
Airflow's dag.test(). The conversion join is checked case by case and against a plain Python
transcription of its documented rules."""

from __future__ import annotations

import http.server
import itertools
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from contracts import ab
from contracts.requestrecord import (
    FIELD_LATENCY_MS,
    FIELD_RESULT,
    FIELD_SOURCE,
    FIELD_STATUS,
    FIELD_TIME,
    FIELD_USER,
    FIELD_VARIANT,
    FIELD_VERSION,
    Reason,
    Request,
    parse_request_line,
)
from devstack.servers import LOOPBACK, free_port
from ingest.events import Event, Recommendation, Watch, format_event, parse_line
from ingest.journal import Journal, SegmentBuilder
from online import evaluation, frames, online_report, totals
from online.conversion import (
    OUTCOME_DTYPES,
    collapse_versions,
    conversions,
    merge_version_outcomes,
    user_outcomes,
    version_outcomes,
)
from online.logreader import read_files, read_kafka, to_frame
from online.settings import Settings
from online.stream import read_journal
from service.lookup import Answer
from service.requestlog import RequestLog
from simulator.traffic import World

REPO = Path(__file__).resolve().parents[2]
TOPIC = "movielog"
T0 = datetime(2025, 3, 1, 12, 0, 0)
WINDOW = timedelta(hours=24)
A, B, C, D = "alpha+2001", "beta+2002", "gamma+2003", "delta+2004"
LIST = (A, B, C)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def write_segment(root: Path, lines: Iterable[bytes], first_offset: int = 0) -> int:
    """Contract lines -> one journal segment, through the grammar as the consumer does it;
    returns the next offset."""
    builder = SegmentBuilder(0)
    offset = first_offset
    for offset, line in enumerate(lines, first_offset):
        builder.add(offset, parse_line(line), line)
    Journal(root, TOPIC).write(builder)
    return offset + 1


def event_lines(events: Iterable[Event]) -> list[bytes]:
    return [format_event(e).encode() for e in events]


def journal_watches(root: Path, rows: Iterable[tuple[float, int, str, int]]) -> pd.DataFrame:
    """Watches (minutes after T0, user, movie, minute) read back from a real journal."""
    write_segment(root, event_lines(Watch(at(t), u, m, n) for t, u, m, n in rows))
    return read_journal(Journal(root, TOPIC), {}).watches


def recs_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Recommendations from short dicts: t (minutes after T0), user, and overrides."""
    full = [
        {
            "time": at(r["t"]),
            "user": r.get("user", 1),
            "status": r.get("status", 200),
            "variant": r.get("variant", "control"),
            "version": r.get("version", "v1"),
            "source": "personal",
            "latency_ms": r.get("latency_ms", 1.0),
            "movies": r.get("movies", LIST if r.get("status", 200) == 200 else ()),
        }
        for r in rows
    ]
    return frames.recommendations(
        **{c: [r[c] for r in full] for c in frames.RECOMMENDATION_COLUMNS}
    )


# --- the request log: one contract, written by the service, read here ----------------------


def service_line(
    user: int | None,
    status: int,
    when: datetime,
    movies: tuple[str, ...] = LIST,
    *,
    variant: str = "control",
    version: str = "v1",
    latency_ms: float = 2.5,
) -> bytes:
    """A request-log line exactly as the service writes it (``when`` is naive UTC)."""
    answer = (
        None if user is None else Answer(",".join(movies).encode(), version, "personal", variant)
    )
    now = when.replace(tzinfo=UTC).timestamp()
    return RequestLog().format(user, status, latency_ms / 1000, answer, now).encode()


def test_service_lines_parse_back_to_what_was_served() -> None:
    served = service_line(42, 200, at(0.5), variant="treatment", version="v9", latency_ms=12.25)
    rejected_user = service_line(None, 400, at(1))
    assert parse_request_line(served) == Request(
        at(0.5), 42, 200, "treatment", "v9", "personal", 12.25, LIST
    )
    assert parse_request_line(rejected_user.decode()) == Request(
        at(1), None, 400, frames.NO_LABEL, frames.NO_LABEL, frames.NO_LABEL, 2.5, ()
    )
    # The field names are the writer's constants, not restated here.
    assert set(json.loads(served)) == {
        FIELD_TIME,
        FIELD_USER,
        FIELD_STATUS,
        FIELD_VARIANT,
        FIELD_VERSION,
        FIELD_SOURCE,
        FIELD_LATENCY_MS,
        FIELD_RESULT,
    }


def test_times_in_other_zones_are_normalised_to_naive_utc() -> None:
    line = json.dumps(
        {
            "time": "2025-03-01T14:00:00+02:00",
            "user": 1,
            "status": 200,
            "latency_ms": 1,
            "result": A,
        }
    )
    assert parse_request_line(line).time == T0


MALFORMED = {
    b"": Reason.EMPTY,
    b"[2025-03-01 12:00:00 +0000] [7] [INFO] Booting worker with pid: 7": Reason.BAD_JSON,
    b"\xff\xfe{}": Reason.BAD_UTF8,
    b"[1, 2]": Reason.BAD_JSON,
    b'{"time": "yesterday", "user": 1, "status": 200, "latency_ms": 1, "result": "a+2001"}': (
        Reason.BAD_TIME
    ),
    b'{"time": "2025-03-01T12:00:00Z", "user": "1", "status": 200, "latency_ms": 1, '
    b'"result": "a+2001"}': Reason.BAD_USER,
    b'{"time": "2025-03-01T12:00:00Z", "user": 1, "status": true, "latency_ms": 1, '
    b'"result": "a+2001"}': Reason.BAD_STATUS,
    b'{"time": "2025-03-01T12:00:00Z", "user": 1, "status": 200, "latency_ms": -1, '
    b'"result": "a+2001"}': Reason.BAD_LATENCY,
    b'{"time": "2025-03-01T12:00:00Z", "user": 1, "status": 200, "latency_ms": 1, '
    b'"variant": 3, "result": "a+2001"}': Reason.BAD_LABEL,
    b'{"time": "2025-03-01T12:00:00Z", "user": 1, "status": 200, "latency_ms": 1, '
    b'"result": ""}': Reason.BAD_RESULT,
    b"x" * 70_000: Reason.TOO_LONG,
}


@pytest.mark.parametrize("line", list(MALFORMED), ids=[r.value for r in MALFORMED.values()])
def test_malformed_lines_say_why(line: bytes) -> None:
    assert parse_request_line(line) == MALFORMED[line]


def test_a_truncated_write_is_a_rejected_line() -> None:
    line = service_line(1, 200, T0)
    assert parse_request_line(line[: len(line) // 2]) == Reason.BAD_JSON


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
RECORDS = st.dictionaries(
    st.sampled_from(
        [
            *(FIELD_TIME, FIELD_USER, FIELD_STATUS, FIELD_VARIANT, FIELD_VERSION),
            *(FIELD_SOURCE, FIELD_LATENCY_MS, FIELD_RESULT, "other"),
        ]
    ),
    JSON_VALUES | st.sampled_from(["2025-03-01T12:00:00.123Z", 200, 404, 1, "a+2001,b+2002"]),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300) | RECORDS.map(json.dumps))
def test_parsing_never_raises_and_every_line_is_accounted_for(raw: bytes | str) -> None:
    parsed = parse_request_line(raw)
    assert isinstance(parsed, Request | Reason)
    rejected: Counter = Counter()
    frame = to_frame([raw, service_line(1, 200, T0)], rejected)
    assert len(frame) + sum(rejected.values()) == 2
    assert len(frame) == (2 if isinstance(parsed, Request) else 1)
    assert frame["time"].dtype == "datetime64[ns]"


def test_files_are_read_incrementally_and_malformed_lines_counted(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    good = [service_line(u, 200, at(u)) for u in (1, 2, 3)]
    log.write_bytes(good[0] + b"\nnot json\n" + good[1] + b"\n" + good[2][:20])  # 3rd: mid-write
    first = read_files([str(tmp_path / "*.log")], {})
    assert list(first.requests["user"]) == [1, 2]
    assert first.rejected == Counter({"bad_json": 1})  # the half-written line is not judged yet
    with log.open("ab") as handle:
        handle.write(good[2][20:] + b"\n")
    second = read_files([str(log)], first.positions)
    assert list(second.requests["user"]) == [3]
    assert not second.rejected
    assert read_files([str(log)], second.positions).requests.empty  # nothing new
    rotated = tmp_path / "rotated.tmp"
    rotated.write_bytes(service_line(4, 503, at(4)) + b"\n")
    rotated.replace(log)  # log rotation: a new file under the old name
    third = read_files([str(log)], second.positions)
    assert list(third.requests["user"]) == [4]


def test_request_log_topic_is_read_from_stored_offsets(bootstrap: str, topic: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap)

    def produce(lines: list[bytes]) -> None:
        for line in lines:  # keyed by user, as service.kafkasink does: both partitions get some
            user = json.loads(line)[FIELD_USER] if line.startswith(b"{") else 0
            producer.send(topic, key=b"%d" % (user or 0), value=line)
        producer.flush()

    try:
        produce([service_line(u, 200, at(u)) for u in range(1, 21)] + [b"garbage"])
        first = read_kafka(bootstrap, topic, {})
        assert sorted(first.requests["user"]) == list(range(1, 21))
        assert first.rejected == Counter({"bad_json": 1})
        assert set(first.positions) == {"0", "1"}
        assert read_kafka(bootstrap, topic, first.positions).requests.empty
        produce([service_line(u, 500, at(u)) for u in (30, 31)])
        second = read_kafka(bootstrap, topic, first.positions)
    finally:
        producer.close()
    assert sorted(second.requests["user"]) == [30, 31]
    assert list(second.requests["status"]) == [500, 500]


# --- the conversion join -------------------------------------------------------------------

# Each case: recommendations, watches (minutes after T0, user, movie, minute), and per
# recommendation the expected (exposure, duplicate, converted, position, minutes).
DAY = 24 * 60
CASES = {
    "starts a listed movie in the window": (
        [{"t": 0}],
        [(10, 1, B, 0), (11, 1, B, 1), (12, 1, B, 2)],
        [(True, False, True, 2, 3.0)],
    ),
    "position is the movie started first, not the best ranked": (
        [{"t": 0}],
        [(5, 1, C, 0), (30, 1, A, 0), (31, 1, A, 1)],
        [(True, False, True, 3, 3.0)],
    ),
    "watching on in a movie started before does not convert": (
        [{"t": 0}],
        [(-30, 1, B, 0), (1, 1, B, 1), (2, 1, B, 2), (3, 1, B, 3)],
        [(True, False, False, None, 0.0)],
    ),
    "a start after the window does not convert": (
        [{"t": 0}],
        [(DAY + 1, 1, B, 0)],
        [(True, False, False, None, 0.0)],
    ),
    "a start at the recommendation's own time converts": (
        [{"t": 0}],
        [(0, 1, A, 0)],
        [(True, False, True, 1, 1.0)],
    ),
    "a start at the window's last instant converts": (
        [{"t": 0}],
        [(DAY, 1, C, 0), (DAY + 1, 1, C, 1)],  # the minute after the window is not counted
        [(True, False, True, 3, 1.0)],
    ),
    "a repeat within a minute counts once": (
        [{"t": 0}, {"t": 0.5}],
        [(10, 1, B, 0)],
        [(True, False, True, 2, 1.0), (False, True, False, None, 0.0)],
    ),
    "a burst of repeats is one recommendation however long": (
        [{"t": 0}, {"t": 0.75}, {"t": 1.5}, {"t": 2.25}],
        [(10, 1, B, 0)],
        [(True, False, True, 2, 1.0)] + [(False, True, False, None, 0.0)] * 3,
    ),
    "the same list two minutes later is a new recommendation": (
        [{"t": 0}, {"t": 2}],
        [(10, 1, B, 0)],
        [(True, False, True, 2, 1.0), (True, False, True, 2, 1.0)],
    ),
    "the same list in another variant is not a repeat": (
        [{"t": 0}, {"t": 0.1, "variant": "treatment"}],
        [(10, 1, B, 0)],
        [(True, False, True, 2, 1.0), (True, False, True, 2, 1.0)],
    ),
    "a different list right after is not a repeat": (
        [{"t": 0}, {"t": 0.1, "movies": (D, B)}],
        [(10, 1, B, 0)],
        [(True, False, True, 2, 1.0), (True, False, True, 2, 1.0)],
    ),
    "an unknown user never converts": (
        [{"t": 0, "user": 99}],
        [(10, 1, B, 0), (11, 2, A, 0)],
        [(True, False, False, None, 0.0)],
    ),
    "another user's watch does not count": (
        [{"t": 0}],
        [(10, 2, B, 0)],
        [(True, False, False, None, 0.0)],
    ),
    "error responses and rejected user IDs are not exposures": (
        [{"t": 0, "status": 500}, {"t": 0, "status": 400, "user": None}],
        [(10, 1, B, 0)],
        [(False, False, False, None, 0.0), (False, False, False, None, 0.0)],
    ),
    "an unlisted movie does not convert": (
        [{"t": 0}],
        [(10, 1, D, 0)],
        [(True, False, False, None, 0.0)],
    ),
    "minutes: distinct, in the window, of listed movies started in it": (
        [{"t": 0}],
        [
            (10, 1, B, 0),
            (11, 1, B, 1),
            (11, 1, B, 1),  # the stream repeats lines
            (12, 1, B, 2),
            (DAY + 5, 1, B, 3),  # after the window
            (-5, 1, A, 0),  # A was started before: its minutes are not the recommendation's
            (20, 1, A, 1),
            (20, 1, D, 0),  # not listed
        ],
        [(True, False, True, 2, 3.0)],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_conversion_join(case: str, tmp_path: Path) -> None:
    recs, watch_rows, expected = CASES[case]
    recs = recs_frame(recs)
    judged = conversions(recs, journal_watches(tmp_path, watch_rows), WINDOW)
    got = [
        (e, d, c, None if pd.isna(p) else int(p), m)
        for e, d, c, p, m in judged[["exposure", "duplicate", "converted", "position", "minutes"]]
        .astype(object)
        .itertuples(index=False)
    ]
    assert got == expected
    assert list(judged.index) == list(recs.index)


def reference_judge(
    recs: pd.DataFrame, watches: pd.DataFrame, window: timedelta, dedup: timedelta
) -> list[tuple]:
    """The documented rules, one recommendation at a time, in plain Python."""
    first: dict[tuple, datetime] = {}
    for w in watches.itertuples():
        key = (w.user, w.movie)
        first[key] = min(first.get(key, w.time), w.time)
    previous: dict[tuple, datetime] = {}
    result: dict[int, tuple] = {}
    for i in sorted(range(len(recs)), key=lambda i: (recs["time"].iloc[i], i)):
        r = recs.iloc[i]
        if r.status != 200 or pd.isna(r.user) or not r.movies:
            result[i] = (False, False, False, None, 0.0)
            continue
        key = (r.user, r.variant, r.version, r.movies)
        repeat = key in previous and r.time - previous[key] <= dedup
        previous[key] = r.time
        if repeat:
            result[i] = (False, True, False, None, 0.0)
            continue
        started = sorted(
            (first[(r.user, m)], position, m)
            for position, m in enumerate(r.movies, 1)
            if (r.user, m) in first and r.time <= first[(r.user, m)] <= r.time + window
        )
        if not started:
            result[i] = (True, False, False, None, 0.0)
            continue
        movies = {m for _, _, m in started}
        minutes = {
            (w.movie, w.minute)
            for w in watches.itertuples()
            if w.user == r.user and w.movie in movies and r.time <= w.time <= r.time + window
        }
        result[i] = (True, False, True, started[0][1], float(len(minutes)))
    return [result[i] for i in range(len(recs))]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_conversion_join_agrees_with_the_rules_written_out(seed: int) -> None:
    rng = np.random.default_rng(seed)
    movies = [f"film{i}+{1990 + i}" for i in range(12)]
    lists = [tuple(rng.choice(movies, 4, replace=False)) for _ in range(5)]
    n = 400
    status = rng.choice([200, 200, 200, 500], n)
    recs = frames.recommendations(
        time=T0 + pd.to_timedelta(rng.integers(0, 6 * 3600, n), unit="s"),
        user=[None if s == 400 else u for s, u in zip(status, rng.integers(1, 9, n), strict=True)],
        status=status,
        variant=rng.choice(["control", "treatment"], n),
        version=["v1"] * n,
        source=["personal"] * n,
        latency_ms=np.ones(n),
        movies=[
            lists[k] if s == 200 else () for k, s in zip(rng.integers(0, 5, n), status, strict=True)
        ],
    )
    m = 1500
    watches = frames.watches(
        time=T0 + pd.to_timedelta(rng.integers(-3600, 8 * 3600, m), unit="s"),
        user=rng.integers(1, 11, m),  # users 9 and 10 are never recommended anything
        movie=rng.choice(movies, m),
        minute=rng.integers(0, 6, m),
    )
    window, dedup = timedelta(hours=1), timedelta(seconds=60)
    judged = conversions(recs, watches, window, dedup)
    got = [
        (e, d, c, None if pd.isna(p) else int(p), m)
        for e, d, c, p, m in judged.astype(object).itertuples(index=False)
    ]
    expected = reference_judge(recs, watches, window, dedup)
    assert got == expected
    assert 0 < sum(e[2] for e in expected) < sum(e[0] for e in expected)  # a real mix
    assert any(e[1] for e in expected)


def test_user_outcomes_is_one_row_per_user_and_variant(tmp_path: Path) -> None:
    recs = recs_frame(
        [
            {"t": 0, "user": 1, "version": "v1"},
            {"t": 0.2, "user": 1, "version": "v1"},  # a repeat
            {"t": 60, "user": 1, "version": "v2", "movies": (D,)},
            {"t": 15, "user": 1, "variant": "treatment", "version": "v3"},
            {"t": 1, "user": 2, "variant": "treatment", "version": "v3"},
            {"t": 2, "user": 3, "status": 500},  # only errors: never exposed
            {"t": 3, "user": None, "status": 400},
        ]
    )
    watches = journal_watches(
        tmp_path, [(10, 1, B, 0), (11, 1, B, 1), (70, 1, D, 0), (100, 2, A, 0)]
    )
    out = user_outcomes(recs, watches, WINDOW)
    assert {c: str(t) for c, t in out.dtypes.items()} == OUTCOME_DTYPES
    assert list(out.columns) == list(OUTCOME_DTYPES)
    rows = {(r.user, r.variant): r for r in out.itertuples(index=False)}
    assert set(rows) == {(1, "control"), (1, "treatment"), (2, "treatment")}
    control = rows[(1, "control")]
    assert (control.version, control.first_exposure) == ("v1", pd.Timestamp(at(0)))
    assert (control.exposures, control.conversions, control.converted) == (2, 2, True)
    assert control.minutes == 3.0  # B's two minutes after the first, D's one after the second
    # the treatment list (A, B, C) came after B was started at minute 10: no start follows it
    assert (rows[(1, "treatment")].conversions, rows[(1, "treatment")].converted) == (0, False)
    assert rows[(2, "treatment")].converted
    # The incremental job's route (per version, merged, collapsed) gives the same table.
    judged = conversions(recs, watches, WINDOW)
    halves = [recs.index < 3, recs.index >= 3]
    merged = merge_version_outcomes(*(version_outcomes(recs[h], judged[h]) for h in halves))
    pd.testing.assert_frame_equal(collapse_versions(merged), out)


# --- metrics -------------------------------------------------------------------------------


def test_metrics_on_a_small_log(tmp_path: Path) -> None:
    popular = (D, C, B)  # the cold-start list: the first 40 users are new
    latencies = np.arange(1, 101, dtype=float)  # control's 100 requests: 1..100 ms
    control = [
        {
            "t": i * 2,
            "user": 100 + i,
            "latency_ms": lat,
            "movies": popular if i < 40 else (f"pick{i}+2000", A, B),
        }
        for i, lat in enumerate(latencies)
    ]
    control[5].update(status=500, movies=())
    control[6].update(status=503, movies=())
    treatment = [
        {
            "t": i,
            "user": 500 + i,
            "variant": "treatment",
            "version": "v2",
            "movies": (f"own{i}+2000", A),
        }
        for i in range(10)
    ]
    treatment.append(
        {"t": 30, "user": 500, "variant": "treatment", "version": "v2", "movies": ("own0+2000", A)}
    )  # user 500 again, same list: 1 user
    recs = recs_frame(control + treatment)
    watches = journal_watches(
        tmp_path,
        [
            *[(101, 150, B, 0), (102, 150, B, 1)],  # control user 150 (list at t=100) starts B
            *[(5, 500, A, 0), (6, 501, "own1+2000", 0)],  # treatment: positions 2 and 1
        ],
    )
    table = totals.online_metrics(recs, watches, WINDOW)
    c = table.loc[("v1", "control")]
    assert c["requests"] == 100 and c["ok"] == 98
    assert c["availability"] == pytest.approx(0.98)
    for q in totals.QUANTILES:
        exact = np.percentile(latencies, q, method="inverted_cdf")
        assert c[f"latency_p{q}_ms"] == pytest.approx(exact, rel=0.005)
    # 98 users served; the 38 cold-start users (40 minus 2 errors) got the most common list
    assert c["users_served"] == 98
    assert c["personalisation"] == pytest.approx(60 / 98)
    assert (c["recommendations"], c["conversions"], c["users"]) == (98, 1, 98)
    assert (c["mean_position"], c["minutes"]) == (3.0, 2.0)
    t = table.loc[("v2", "treatment")]
    assert t["users_served"] == 10
    assert t["personalisation"] == 1.0  # every list is its user's own: no shared list
    assert (t["recommendations"], t["conversions"]) == (11, 2)
    assert t["conversion_rate"] == pytest.approx(2 / 11)
    assert (t["users"], t["converted_users"]) == (10, 2)
    assert t["user_conversion_rate"] == pytest.approx(0.2)
    assert t["mean_position"] == pytest.approx(1.5)
    assert t["minutes_per_recommendation"] == pytest.approx(2 / 11)
    # A given reference list (say the global popular one) replaces the most common list.
    with_reference = totals.online_metrics(recs, watches, WINDOW, reference=(A, B))
    assert with_reference.loc[("v1", "control"), "personalisation"] == 1.0
    assert with_reference.loc[("v2", "treatment"), "personalisation"] == 1.0
    popular_given = totals.online_metrics(recs, watches, WINDOW, reference=popular)
    assert popular_given.loc[("v1", "control"), "personalisation"] == pytest.approx(60 / 98)


def test_personalisation_follows_each_users_latest_list() -> None:
    popular = (D, C, B)
    recs = recs_frame(
        [
            {"t": 0, "user": 1, "movies": popular},
            {"t": 0, "user": 2, "movies": popular},
            {"t": 0, "user": 3, "movies": popular},
            {"t": 10, "user": 3, "movies": LIST},  # known now: a personal list
            {"t": 0, "user": 4, "movies": (A,)},
        ]
    )
    served = totals.served_lists(recs)
    table = totals.personalisation(served)
    assert table.loc[("v1", "control"), "users_served"] == 4
    assert table.loc[("v1", "control"), "personalisation"] == pytest.approx(0.5)


# --- the incremental job -------------------------------------------------------------------


def simulated(days: float = 4, seed: int = 5) -> tuple[list[bytes], list[tuple[datetime, bytes]]]:
    """A simulated world's stream, and the service's request log for its recommendation
    lines: users split 50/50 between two variants served by two versions, errors logged
    without a list, plus a rejected user ID and a stray line now and then."""
    lines = [line for _, line in World.build(150, 120, seed).generate(days, noise=0.005)]
    split = ab.parse_split({"control": "1", "treatment": "1"})
    log: list[tuple[datetime, bytes]] = []
    for line in lines:
        event = parse_line(line)
        if not isinstance(event, Recommendation):
            continue
        variant = split.assign(event.user_id)
        served = service_line(
            event.user_id,
            event.status,
            event.time,
            event.movies,
            variant=variant,
            version=f"v-{variant}",
            latency_ms=event.latency_ms / 3,
        )
        log.append((event.time, served))
        if event.user_id % 5 == 0:
            log.append((event.time, service_line(None, 400, event.time)))
        if event.user_id % 7 == 0:
            log.append((event.time, b"[INFO] worker booted"))
    return lines, log


def job_settings(data_dir: Path, **overrides) -> Settings:
    return Settings(
        data_dir=data_dir, request_log_paths=(str(data_dir / "requests.log"),), **overrides
    )


def append_log(data_dir: Path, entries: list[tuple[datetime, bytes]]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "requests.log").open("ab") as handle:
        handle.writelines(line + b"\n" for _, line in entries)


def comparable(data_dir: Path) -> dict:
    document = json.loads((data_dir / "online" / online_report.METRICS_JSON).read_text())
    return {k: document[k] for k in ("groups", "pending", "watermark", "rejected")}


def test_incremental_runs_add_up_to_one_run_and_reruns_add_nothing(tmp_path: Path) -> None:
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


def test_a_repeat_across_a_run_boundary_counts_once(tmp_path: Path) -> None:
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


def test_the_job_counts_what_the_batch_functions_count(tmp_path: Path) -> None:
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


def test_outputs_prometheus_file_report_and_push(tmp_path: Path) -> None:
    lines, log = simulated(days=3, seed=2)
    write_segment(tmp_path, lines)
    append_log(tmp_path, log)
    with pushgateway() as pushed:
        evaluation.run(job_settings(tmp_path, pushgateway_url=pushed.url, push_job="recsys_online"))
    out = tmp_path / "online"
    document = json.loads((out / online_report.METRICS_JSON).read_text())
    families = {
        f.name: f
        for f in text_string_to_metric_families((out / online_report.PROMETHEUS_FILE).read_text())
    }
    for group in document["groups"]:
        labels = {"version": group["version"], "variant": group["variant"]}
        for column, (name, _) in online_report.GAUGES.items():
            samples = [s.value for s in families[name].samples if s.labels == labels]
            assert samples == ([] if group[column] is None else [pytest.approx(group[column])])
        latency = {
            s.labels["quantile"]: s.value
            for s in families["recsys_online_latency_ms"].samples
            if {k: s.labels[k] for k in labels} == labels
        }
        assert latency == {
            "0.5": pytest.approx(group["latency_p50_ms"]),
            "0.95": pytest.approx(group["latency_p95_ms"]),
            "0.99": pytest.approx(group["latency_p99_ms"]),
        }
    pending = families["recsys_online_pending_recommendations"].samples[0].value
    assert pending == document["pending"] > 0
    markdown = (out / online_report.REPORT_MD).read_text()
    for group in document["groups"]:
        assert f"| {group['version']} | {group['variant']} | {group['requests']} |" in markdown
    assert pushed.requests == [("PUT", "/metrics/job/recsys_online")]
    assert b"recsys_online_conversion_rate{" in pushed.bodies[0]


@dataclass
class Pushed:
    url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


@contextmanager
def pushgateway() -> Iterator[Pushed]:
    """An HTTP server that answers pushes as a Pushgateway does and keeps what was pushed."""
    seen = Pushed()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            seen.requests.append(("PUT", self.path))
            seen.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, free_port()), Handler)
    seen.url = f"http://{LOOPBACK}:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_job_reads_the_request_log_topic(tmp_path: Path, bootstrap: str, topic: str) -> None:
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


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_DATA_DIR", "/data")
    for name in ["ONLINE_WINDOW_HOURS", "ONLINE_STREAM_SPLIT", "REQUEST_LOG_PATH"]:
        monkeypatch.delenv(name, raising=False)
    default = Settings.from_env()
    assert (default.data_dir, default.out_dir, default.window, default.dedup) == (
        Path("/data"),
        Path("/data/online"),
        timedelta(hours=24),
        timedelta(seconds=60),
    )
    assert default.stream_assign() is None and default.request_log_paths == ()
    monkeypatch.setenv("ONLINE_WINDOW_HOURS", "2.5")
    monkeypatch.setenv("ONLINE_STREAM_SPLIT", "control=1, treatment=1")
    monkeypatch.setenv("REQUEST_LOG_PATH", "/logs/a.log, /logs/b-*.log")
    monkeypatch.setenv("ONLINE_REFERENCE_LIST", f"{A},{B}")
    custom = Settings.from_env()
    assert custom.window == timedelta(hours=2.5)
    assert custom.request_log_paths == ("/logs/a.log", "/logs/b-*.log")
    assert custom.reference_list == (A, B)
    split = ab.parse_split({"control": "1", "treatment": "1"})
    assert [custom.stream_assign()(u) for u in range(50)] == [split.assign(u) for u in range(50)]
    monkeypatch.setenv("ONLINE_WINDOW_HOURS", "0")
    with pytest.raises(ValueError, match="ONLINE_WINDOW_HOURS"):
        Settings.from_env()


# --- entry points: CLI and DAG -------------------------------------------------------------


def run_module(argv: list[str], env: dict[str, str], timeout: float = 120):
    return subprocess.run(
        [sys.executable, *argv],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_cli(tmp_path: Path) -> None:
    env = {"RECSYS_DATA_DIR": str(tmp_path)}
    assert "show" in run_module(["-m", "online", "--help"], env).stdout
    assert run_module(["-m", "online", "show"], env).returncode == 1
    write_segment(tmp_path, event_lines([Watch(at(0), 1, A, 0)]))
    append_log(tmp_path, [(at(0), service_line(1, 200, at(0)))])
    env["REQUEST_LOG_PATH"] = str(tmp_path / "requests.log")
    done = run_module(["-m", "online", "run"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["read"]["request_log_file_lines"] == 1
    shown = run_module(["-m", "online", "show"], env)
    assert json.loads(shown.stdout)["groups"][0]["requests"] == 1


def test_dag_runs_the_job_and_writes_the_report(tmp_path: Path, redis_url: str) -> None:
    """The DAG as the scheduler loads it from dags/ (every file there must import cleanly),
    run with dag.test() by the project's runner in its own process."""
    data = tmp_path / "data"
    lines, log = simulated(days=2, seed=4)
    write_segment(data, lines)
    append_log(data, log)
    env = {
        "RECSYS_DATA_DIR": str(data),
        "REQUEST_LOG_PATH": str(data / "requests.log"),
        "RECSYS_TASK_RETRIES": "0",
        "REDIS_URL": redis_url,  # the experiment task finds none running: a no-op
    }
    home = str(tmp_path / "airflow")
    argv = ["-m", "devstack.retrain", "--dag", "recsys_online", "--airflow-home", home]
    described = run_module([*argv, "--describe"], env)
    assert described.returncode == 0, described.stderr[-3000:]
    assert json.loads(described.stdout.splitlines()[-1])["tasks"] == {
        "evaluate": ["experiment"],
        "experiment": [],
    }
    done = run_module(argv, env, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["state"] == "success"
    document = json.loads((data / "online" / online_report.METRICS_JSON).read_text())
    assert document["runs"] == 1
    assert {g["variant"] for g in document["groups"]} == {"control", "treatment", "stream", "none"}
    assert (data / "online" / online_report.REPORT_MD).read_text().startswith("# Online evaluation")
