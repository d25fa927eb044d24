"""Reads the journal's new segments: watches, and the stream's own recommendation lines.

The consumer writes each partition's segments in offset order and never rewrites one, so
"consumed up to offset N in partition P" is the whole reading position. The journal's times
are the stream's zoneless ISO times, which are UTC: naive UTC, like every time in ``online``.

A stream ``recommendation request`` line names no A/B variant or model version: it becomes
variant "stream", version "unknown", unless ``assign`` (user ID -> variant, e.g. a
``contracts.ab.TrafficSplit``'s ``assign``) says which variant the user is in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq

from ingest.journal import Journal, segment_range
from ingest.schema import JOURNAL
from online import frames

_COLUMNS = ["partition", "offset", "kind", "time", "user_id", "movie_id", "minute"]
_COLUMNS += ["status", "latency_ms", "movies"]
_LIST_SEPARATOR = ","  # how journal.SegmentBuilder joins a recommendation's movies


@dataclass
class JournalBatch:
    watches: pd.DataFrame
    recommendations: pd.DataFrame
    max_time: pd.Timestamp | None  # latest event time of any kind in the batch
    positions: dict[str, int]  # partition (a JSON key) -> next offset to read


def read_journal(
    journal: Journal,
    positions: dict[str, int],
    assign: Callable[[int], str] | None = None,
) -> JournalBatch:
    """Every event journaled at or after ``positions``, and the positions after them."""
    positions = dict(positions)
    tables = []
    for path in journal.segments():
        partition, _, last = segment_range(path)
        start = positions.get(str(partition), 0)
        if last < start:
            continue
        table = pq.read_table(path, columns=_COLUMNS, schema=JOURNAL).to_pandas()
        tables.append(table[table["offset"] >= start])
        positions[str(partition)] = last + 1
    events = pd.concat(tables, ignore_index=True) if tables else JOURNAL.empty_table().to_pandas()
    max_time = events["time"].max() if len(events) else None
    return JournalBatch(
        watches=_watches(events),
        recommendations=_recommendations(events, assign),
        max_time=None if max_time is None else pd.Timestamp(max_time),
        positions=positions,
    )


def _watches(events: pd.DataFrame) -> pd.DataFrame:
    rows = events[events["kind"] == "watch"]
    return frames.watches(rows["time"], rows["user_id"], rows["movie_id"], rows["minute"])


def _recommendations(events: pd.DataFrame, assign: Callable[[int], str] | None) -> pd.DataFrame:
    rows = events[events["kind"] == "recommendation"]
    users = rows["user_id"].to_numpy()
    if assign is None:
        variants = [frames.STREAM_VARIANT] * len(rows)
    else:
        unique = pd.unique(users)
        variant_of = dict(zip(unique, (assign(int(u)) for u in unique), strict=True))
        variants = [variant_of[u] for u in users]
    ok = rows["status"].to_numpy() == 200
    movies = [
        tuple(text.split(_LIST_SEPARATOR)) if good else ()
        for text, good in zip(rows["movies"], ok, strict=True)
    ]
    return frames.recommendations(
        time=rows["time"],
        user=users,
        status=rows["status"],
        variant=variants,
        version=[frames.UNKNOWN_VERSION] * len(rows),
        source=[frames.STREAM_VARIANT] * len(rows),
        latency_ms=rows["latency_ms"],
        movies=movies,
    )
