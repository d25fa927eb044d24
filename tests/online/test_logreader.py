"""Reading the request log back (``online.logreader``, the line format
``contracts.requestrecord``): lines written by the service's own writer parse back to what
was served, every malformed line is rejected with its reason and nothing raises, files are
read incrementally and the Kafka topic from stored offsets."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from online import frames
from online.logreader import read_files, read_kafka, to_frame

T0 = datetime(2025, 3, 1, 12, 0, 0)  # at(0)
A, B, C = "alpha+2001", "beta+2002", "gamma+2003"
LIST = (A, B, C)  # the list service_line serves by default


def test_service_lines_parse_back_to_what_was_served(
    at: Callable[[float], datetime], service_line: Callable[..., bytes]
) -> None:
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


def test_a_truncated_write_is_a_rejected_line(service_line: Callable[..., bytes]) -> None:
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
def test_parsing_never_raises_and_every_line_is_accounted_for(
    service_line: Callable[..., bytes], raw: bytes | str
) -> None:
    parsed = parse_request_line(raw)
    assert isinstance(parsed, Request | Reason)
    rejected: Counter = Counter()
    frame = to_frame([raw, service_line(1, 200, T0)], rejected)
    assert len(frame) + sum(rejected.values()) == 2
    assert len(frame) == (2 if isinstance(parsed, Request) else 1)
    assert frame["time"].dtype == "datetime64[ns]"


def test_files_are_read_incrementally_and_malformed_lines_counted(
    tmp_path: Path, at: Callable[[float], datetime], service_line: Callable[..., bytes]
) -> None:
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


def test_request_log_topic_is_read_from_stored_offsets(
    bootstrap: str, topic: str, at: Callable[[float], datetime], service_line: Callable[..., bytes]
) -> None:
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
