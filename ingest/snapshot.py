"""Immutable, versioned snapshots of what the stream has said: the training data's only source.

A snapshot is a directory ``snapshots/<id>/`` holding ``ratings.parquet`` (latest rating per
user and movie), ``watches.parquet`` (minutes watched per user and movie) and
``manifest.json`` (offsets covered, row counts, rejected counts, parent, content hash). It is
built in a hidden temporary directory and appears through one atomic rename, then is made
read-only; nothing ever edits it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.journal import Journal
from ingest.schema import RATINGS, SCHEMA_VERSION, WATCHES

MANIFEST = "manifest.json"
TABLES = {"ratings": RATINGS, "watches": WATCHES}


@dataclass(frozen=True)
class Manifest:
    snapshot_id: str
    created_at: str
    schema_version: int
    topic: str
    parent: str | None
    offsets: dict[str, list[int]]  # partition -> [first, last] offsets covered
    rows: dict[str, int]
    rejected: dict[str, int]
    content_hash: str

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        return cls(**json.loads((directory / MANIFEST).read_text()))


@dataclass(frozen=True)
class Snapshot:
    manifest: Manifest
    ratings: pd.DataFrame
    watches: pd.DataFrame

    @property
    def snapshot_id(self) -> str:
        return self.manifest.snapshot_id


class SnapshotStore:
    """Snapshots under ``<root>/snapshots``; IDs sort by creation time."""

    def __init__(self, root: Path):
        self.dir = root / "snapshots"

    def list(self) -> list[str]:
        if not self.dir.exists():
            return []
        return sorted(p.name for p in self.dir.iterdir() if (p / MANIFEST).exists())

    def latest(self) -> str | None:
        ids = self.list()
        return ids[-1] if ids else None

    def manifest(self, snapshot_id: str | None = None) -> Manifest:
        return Manifest.read(self.dir / self._resolve(snapshot_id))

    def load(self, snapshot_id: str | None = None) -> Snapshot:
        directory = self.dir / self._resolve(snapshot_id)
        tables = {
            name: pq.read_table(directory / f"{name}.parquet", schema=schema).to_pandas()
            for name, schema in TABLES.items()
        }
        return Snapshot(Manifest.read(directory), **tables)

    def _resolve(self, snapshot_id: str | None) -> str:
        resolved = snapshot_id or self.latest()
        if resolved is None or not (self.dir / resolved / MANIFEST).exists():
            raise FileNotFoundError(f"no snapshot {snapshot_id or '(latest)'} in {self.dir}")
        return resolved

    def cut(self, journal: Journal) -> Manifest:
        """Build a snapshot of everything in the journal; reuse the latest if nothing is new."""
        offsets = {str(p): list(r) for p, r in sorted(journal.offset_ranges().items())}
        parent = self.latest()
        if parent is not None and self.manifest(parent).offsets == offsets:
            return self.manifest(parent)
        events, rejected = journal.read()
        frame = events.to_pandas().drop_duplicates(["partition", "offset"])
        tables = {"ratings": latest_ratings(frame), "watches": watch_history(frame)}
        digest = hashlib.sha256()
        now = datetime.now(UTC)
        snapshot_id = f"{now:%Y%m%dT%H%M%S%fZ}"
        tmp = self.dir / f".tmp-{snapshot_id}"
        tmp.mkdir(parents=True)
        for name, table in tables.items():
            path = tmp / f"{name}.parquet"
            pq.write_table(table, path)
            digest.update(path.read_bytes())
        manifest = Manifest(
            snapshot_id=snapshot_id,
            created_at=now.isoformat(),
            schema_version=SCHEMA_VERSION,
            topic=journal.dir.name,
            parent=parent,
            offsets=offsets,
            rows={name: t.num_rows for name, t in tables.items()},
            rejected=dict(sorted(rejected.items())),
            content_hash=digest.hexdigest(),
        )
        (tmp / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
        for path in tmp.iterdir():
            path.chmod(0o444)
        os.replace(tmp, self.dir / snapshot_id)
        return manifest


def latest_ratings(frame: pd.DataFrame) -> pa.Table:
    """One row per (user, movie): the rating given last (by time, then stream offset)."""
    rates = frame[frame["kind"] == "rate"].sort_values(["time", "partition", "offset"])
    latest = rates.drop_duplicates(["user_id", "movie_id"], keep="last")
    latest = latest.sort_values(["user_id", "movie_id"])[RATINGS.names]
    return pa.Table.from_pandas(latest, schema=RATINGS, preserve_index=False)


def watch_history(frame: pd.DataFrame) -> pa.Table:
    """One row per (user, movie): distinct minutes watched, first and last watch time."""
    watches = frame[frame["kind"] == "watch"]
    grouped = (
        watches.groupby(["user_id", "movie_id"], sort=True)
        .agg(
            minutes=("minute", "nunique"),
            first_time=("time", "min"),
            last_time=("time", "max"),
        )
        .reset_index()
    )
    return pa.Table.from_pandas(grouped, schema=WATCHES, preserve_index=False)


def pick_snapshot(snapshot_id: str | None = None, *, root: Path, topic: str) -> str:
    """The snapshot a retrain should use: the one named, else a fresh cut of the journal
    (which is the latest snapshot again when nothing new arrived), else the latest."""
    store = SnapshotStore(root)
    if snapshot_id:
        return store.manifest(snapshot_id).snapshot_id
    journal = Journal(root, topic)
    if journal.segments():
        return store.cut(journal).snapshot_id
    return store.manifest().snapshot_id
