"""Reads the service's request log (``service.requestlog``) back into a recommendations table;
the line's format is ``contracts.requestrecord``'s.

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
import os
import time as _clock
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from contracts.requestrecord import Reason, Request, parse_request_line
from online import frames

READ_CHUNK_BYTES = 16 * 1024 * 1024
KAFKA_POLL_MS = 500
KAFKA_READ_SECONDS = 300.0  # one run reads the topic for this long at most


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
