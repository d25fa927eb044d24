"""The journal: validated events, durably written per partition in offset-named segments.

A segment file ``p<partition>/<first>-<last>.parquet`` holds every accepted event whose
offset lies in ``[first, last]``; the lines rejected in that range go beside it to the
quarantine. Because a segment's name is its offset range and it appears only through an
atomic rename, the journal itself says how far each partition was durably consumed: a
restarted consumer resumes at ``last + 1``, so a crash can neither lose nor duplicate events.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.events import Account, Event, Rate, Recommendation, Rejected, Watch
from ingest.schema import JOURNAL

_SUFFIX = ".parquet"
REJECTED_KEY = b"recsys.rejected"  # parquet metadata: rejected counts by reason


@dataclass
class SegmentBuilder:
    """Accumulates one partition's events of a batch, column by column."""

    partition: int
    first: int = -1
    last: int = -1
    columns: dict[str, list] = field(default_factory=lambda: {n: [] for n in JOURNAL.names})
    rejected: list[tuple[int, str, str, bytes]] = field(default_factory=list)

    def add(self, offset: int, parsed: Event | Rejected, raw: bytes) -> None:
        if self.first < 0:
            self.first = offset
        self.last = offset
        if isinstance(parsed, Rejected):
            self.rejected.append((offset, parsed.reason.value, parsed.detail, raw))
            return
        c = self.columns
        c["partition"].append(self.partition)
        c["offset"].append(offset)
        c["time"].append(parsed.time)
        c["user_id"].append(parsed.user_id)
        movie = minute = rating = status = latency = movies = None
        match parsed:
            case Watch():
                kind, movie, minute = "watch", parsed.movie_id, parsed.minute
            case Rate():
                kind, movie, rating = "rate", parsed.movie_id, parsed.rating
            case Recommendation():
                kind, status, latency = "recommendation", parsed.status, parsed.latency_ms
                movies = ",".join(parsed.movies) if parsed.status == 200 else parsed.error
            case Account():
                kind = "account"
        c["kind"].append(kind)
        c["movie_id"].append(movie)
        c["minute"].append(minute)
        c["rating"].append(rating)
        c["status"].append(status)
        c["latency_ms"].append(latency)
        c["movies"].append(movies)

    @property
    def empty(self) -> bool:
        return self.first < 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    write(tmp)
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


class Journal:
    """One topic's segments under ``<root>/journal``, its rejects under ``<root>/quarantine``."""

    def __init__(self, root: Path, topic: str):
        self.dir = root / "journal" / topic
        self.quarantine_dir = root / "quarantine" / topic

    def _partition_dir(self, base: Path, partition: int) -> Path:
        return base / f"p{partition:04d}"

    def write(self, segment: SegmentBuilder) -> Path:
        """Durably write one segment (quarantine first: the segment's rename is the commit)."""
        name = f"{segment.first:020d}-{segment.last:020d}"
        reasons = Counter(reason for _, reason, _, _ in segment.rejected)
        if segment.rejected:
            qdir = self._partition_dir(self.quarantine_dir, segment.partition)
            qdir.mkdir(parents=True, exist_ok=True)

            def write_quarantine(tmp: Path) -> None:
                with tmp.open("w", encoding="utf-8") as fh:
                    for offset, reason, detail, raw in segment.rejected:
                        record = {
                            "partition": segment.partition,
                            "offset": offset,
                            "reason": reason,
                            "detail": detail,
                            "line": raw.decode("utf-8", "backslashreplace"),
                        }
                        fh.write(json.dumps(record) + "\n")

            _atomic_write(qdir / f"{name}.jsonl", write_quarantine)
        table = pa.table(segment.columns, schema=JOURNAL).replace_schema_metadata(
            {REJECTED_KEY: json.dumps(reasons).encode()}
        )
        pdir = self._partition_dir(self.dir, segment.partition)
        pdir.mkdir(parents=True, exist_ok=True)
        path = pdir / f"{name}{_SUFFIX}"
        _atomic_write(path, lambda tmp: pq.write_table(table, tmp))
        return path

    def segments(self) -> list[Path]:
        if not self.dir.exists():
            return []
        return sorted(p for p in self.dir.glob(f"p*/*{_SUFFIX}") if not p.name.startswith("."))

    def positions(self) -> dict[int, int]:
        """Next offset to consume per partition, as far as the journal durably holds."""
        nxt: dict[int, int] = {}
        for path in self.segments():
            partition, _, last = segment_range(path)
            nxt[partition] = max(nxt.get(partition, 0), last + 1)
        return nxt

    def offset_ranges(self) -> dict[int, tuple[int, int]]:
        ranges: dict[int, tuple[int, int]] = {}
        for path in self.segments():
            partition, first, last = segment_range(path)
            lo, hi = ranges.get(partition, (first, last))
            ranges[partition] = (min(lo, first), max(hi, last))
        return ranges

    def read(self) -> tuple[pa.Table, Counter]:
        """Every accepted event (deduplicated by offset) and the rejected counts by reason."""
        paths = self.segments()
        rejected: Counter = Counter()
        tables = []
        for path in paths:
            table = pq.read_table(path, schema=JOURNAL)
            meta = pq.read_schema(path).metadata or {}
            rejected.update(json.loads(meta.get(REJECTED_KEY, b"{}")))
            tables.append(table)
        table = pa.concat_tables(tables) if tables else JOURNAL.empty_table()
        return table, rejected


def segment_range(path: Path) -> tuple[int, int, int]:
    first, _, last = path.stem.partition("-")
    return int(path.parent.name[1:]), int(first), int(last)
