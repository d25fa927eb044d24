"""Reads the service's request log (``service.requestlog``) back into a recommendations table.

The lines come from files (the container log, or a file it was redirected to) or from the
Kafka topic the service produces them to. Each reader starts where the last run stopped and
says where it stopped: files by byte offset (a trailing line without its newline waits for the
next run; a file that shrank or changed inode was rotated and is read from the start), Kafka
by offset per partition (until caught up, or for a bounded time, so a run ends).

A line that is not a well-formed request record (other output sharing stdout, a truncated
write, garbage) is counted by reason and skipped; nothing here raises on input.
"""

from __future__ import annotations

import glob
import json
import math
import os
import time as _clock
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from online import frames
from service.requestlog import (
    FIELD_LATENCY_MS,
    FIELD_RESULT,
    FIELD_SOURCE,
    FIELD_STATUS,
    FIELD_TIME,
    FIELD_USER,
    FIELD_VARIANT,
    FIELD_VERSION,
)
from service.response import parse_body

MAX_LINE_BYTES = 64 * 1024  # a real line (20 IDs) is well under 4 KiB
MAX_USER_ID = 2**63 - 1
READ_CHUNK_BYTES = 16 * 1024 * 1024
KAFKA_POLL_MS = 500
KAFKA_READ_SECONDS = 300.0  # one run reads the topic for this long at most
# datetime64[ns] holds years 1678..2261; anything outside is not a time this service logged.
_EARLIEST, _LATEST = datetime(1900, 1, 1), datetime(2200, 1, 1)


class Reason(StrEnum):
    """Why a line was skipped; the values are stable metric labels."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    BAD_UTF8 = "bad_utf8"
    BAD_JSON = "bad_json"
    BAD_TIME = "bad_time"
    BAD_USER = "bad_user"
    BAD_STATUS = "bad_status"
    BAD_LATENCY = "bad_latency"
    BAD_LABEL = "bad_label"
    BAD_RESULT = "bad_result"


class Request(NamedTuple):
    time: datetime  # naive UTC
    user: int | None
    status: int
    variant: str
    version: str
    source: str
    latency_ms: float
    movies: tuple[str, ...]


def parse_request_line(raw: bytes | str) -> Request | Reason:
    """One request-log line, or the reason it is not one. Never raises."""
    if len(raw) > MAX_LINE_BYTES:
        return Reason.TOO_LONG
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Reason.BAD_UTF8
    if not raw.strip():
        return Reason.EMPTY
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return Reason.BAD_JSON
    if not isinstance(record, dict):
        return Reason.BAD_JSON
    time = _time(record.get(FIELD_TIME))
    if time is None:
        return Reason.BAD_TIME
    user = record.get(FIELD_USER)
    if user is not None and not (_is_int(user) and 0 < user <= MAX_USER_ID):
        return Reason.BAD_USER
    status = record.get(FIELD_STATUS)
    if not (_is_int(status) and 100 <= status <= 599):
        return Reason.BAD_STATUS
    latency = record.get(FIELD_LATENCY_MS)
    if not (_is_number(latency) and 0 <= latency < math.inf):
        return Reason.BAD_LATENCY
    labels = [record.get(f, frames.NO_LABEL) for f in (FIELD_VARIANT, FIELD_VERSION, FIELD_SOURCE)]
    if not all(isinstance(label, str) and label for label in labels):
        return Reason.BAD_LABEL
    result = record.get(FIELD_RESULT)
    if not isinstance(result, str):
        return Reason.BAD_RESULT
    movies: tuple[str, ...] = ()
    if status == 200:
        movies = tuple(parse_body(result))
        if not movies or not all(movies):
            return Reason.BAD_RESULT
    variant, version, source = labels
    return Request(time, user, status, variant, version, source, float(latency), movies)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _time(value: Any) -> datetime | None:
    """ISO-8601 (the service writes ``...Z``) as naive UTC; a zoneless time is taken as UTC."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        time = datetime.fromisoformat(value)
    except ValueError:
        return None
    if time.tzinfo is not None:
        try:
            time = time.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            return None
    return time if _EARLIEST <= time < _LATEST else None


@dataclass
class Batch:
    """What one read produced: the requests, skipped lines by reason, and where it stopped."""

    requests: pd.DataFrame
    rejected: Counter = field(default_factory=Counter)
    positions: dict = field(default_factory=dict)


def to_frame(lines: Iterable[bytes | str], rejected: Counter | None = None) -> pd.DataFrame:
    """Parse lines into a recommendations table (``online.frames``); skips are added to
    ``rejected``."""
    rejected = Counter() if rejected is None else rejected
    columns: tuple[list, ...] = ([], [], [], [], [], [], [], [])
    for line in lines:
        parsed = parse_request_line(line)
        if isinstance(parsed, Reason):
            rejected[parsed.value] += 1
            continue
        for column, value in zip(columns, parsed, strict=True):
            column.append(value)
    return frames.recommendations(**dict(zip(Request._fields, columns, strict=True)))


def read_files(patterns: Iterable[str], positions: dict[str, dict]) -> Batch:
    """Every complete line appended to the matching files since ``positions``
    (``{path: {"inode": int, "offset": int}}``)."""
    paths = sorted({p for pattern in patterns for p in glob.glob(pattern) if os.path.isfile(p)})
    rejected: Counter = Counter()
    parts = []
    new_positions = dict(positions)
    for path in paths:
        lines, new_positions[path] = _new_lines(Path(path), positions.get(path))
        parts.append(to_frame(lines, rejected))
    requests = pd.concat(parts, ignore_index=True) if parts else frames.empty_recommendations()
    return Batch(requests, rejected, new_positions)


def _new_lines(path: Path, position: dict | None) -> tuple[list[bytes], dict]:
    stat = path.stat()
    offset = 0
    if position and position["inode"] == stat.st_ino and position["offset"] <= stat.st_size:
        offset = position["offset"]
    lines: list[bytes] = []
    with path.open("rb") as handle:
        handle.seek(offset)
        rest = b""
        while chunk := handle.read(READ_CHUNK_BYTES):
            complete, newline, rest = (rest + chunk).rpartition(b"\n")
            if newline:
                lines.extend(complete.split(b"\n"))
                offset += len(complete) + 1
    return lines, {"inode": stat.st_ino, "offset": offset}


def read_kafka(bootstrap: str, topic: str, offsets: dict[str, int]) -> Batch:
    """Every record of ``topic`` from ``offsets`` (``{partition: next offset}``, as strings:
    JSON keys) until it is caught up: past the end offsets seen at the start and a poll finds
    nothing new. (Both: some Kafka-protocol brokers, Tansu among them, under-report end
    offsets, and a busy topic never goes quiet.) After ``KAFKA_READ_SECONDS`` it stops where
    it is; the next run goes on from there."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # an offset the broker no longer holds: its oldest
    )
    lines: list[bytes] = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        ends = consumer.end_offsets(assigned)
        for tp in assigned:
            start = offsets.get(str(tp.partition))
            if start is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)
        deadline = _clock.monotonic() + KAFKA_READ_SECONDS
        quiet = 0  # empty polls in a row: the first fetch after a seek can come back empty
        while assigned and _clock.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=KAFKA_POLL_MS)
            for records in polled.values():
                lines.extend(r.value for r in records if r.value is not None)
            quiet = 0 if polled else quiet + 1
            if quiet >= 2 and all(consumer.position(tp) >= ends[tp] for tp in assigned):
                break
        positions = {str(tp.partition): consumer.position(tp) for tp in assigned}
    finally:
        consumer.close()
    rejected: Counter = Counter()
    return Batch(to_frame(lines, rejected), rejected, {**offsets, **positions})
