"""Immutable, versioned snapshots of what the stream has said: the training data's only source.

A snapshot is a directory ``snapshots/<id>/`` holding

- ``ratings.parquet``: the latest rating per user and movie (re-ratings: the last one wins);
- ``watches.parquet``: per user and movie, distinct minutes watched, first and last time;
- ``users.parquet`` / ``movies.parquet``: everyone and everything the stream mentioned;
- ``manifest.json``: offsets covered per partition, row counts, rejected counts by reason,
  schema version, parent, creation time, content hash, and the drift verdict against the
  parent (``suspect`` plus the report, also rendered to ``drift.md``).

It is built in a hidden temporary directory and appears through one atomic rename, then is
made read-only; nothing ever edits it. The cut is deterministic in the journal's content:
the same offsets give the same tables and the same content hash.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from contracts.locations import snapshot_location
from contracts.response import LIST_LENGTH
from ingest import drift
from ingest.journal import Journal
from ingest.schema import MOVIES, RATINGS, SCHEMA_VERSION, USERS, WATCHES

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DRIFT_REPORT = "drift.md"
TABLES = {"ratings": RATINGS, "watches": WATCHES, "users": USERS, "movies": MOVIES}
STALE_TMP_SECONDS = 3600  # a temporary directory this old belongs to a crashed cut


class EmptyJournalError(RuntimeError):
    """There is nothing to snapshot yet."""


class SnapshotRefusedError(RuntimeError):
    """A snapshot no model may learn from (see ``validate_snapshot``); the message says why."""


class SuspectSnapshotError(SnapshotRefusedError):
    """The snapshot drifted beyond the configured bounds; training refuses it by default."""


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
    suspect: bool = False
    profile: dict = field(default_factory=dict)  # statistics of the events this cut added
    drift: dict | None = None  # the comparison with the parent's profile


@dataclass(frozen=True)
class Snapshot:
    manifest: Manifest
    ratings: pd.DataFrame
    watches: pd.DataFrame
    users: pd.DataFrame
    movies: pd.DataFrame

    @property
    def snapshot_id(self) -> str:
        return self.manifest.snapshot_id


class SnapshotStore:
    """Snapshots in one location; IDs sort by creation time.

    ``location`` is a data root directory (snapshots go to ``<root>/snapshots``) or a URI
    that ``pyarrow.fs`` understands (``s3://bucket/prefix``, ``gs://...``; see
    ``snapshot_location()``). On a local disk a snapshot appears through an atomic rename
    of its temporary directory; object stores have no rename, so there the manifest is
    written last and is the commit: a snapshot without one does not exist for readers.
    """

    def __init__(self, location: Path | str):
        if isinstance(location, Path) or "://" not in location:
            location = str((Path(location) / "snapshots").resolve())
        self.fs, self.dir = pafs.FileSystem.from_uri(location)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def _path(self, *parts: str) -> str:
        return "/".join([self.dir, *parts])

    def _exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def _read_text(self, path: str) -> str:
        with self.fs.open_input_stream(path) as stream:
            return stream.read().decode()

    def _write_bytes(self, path: str, data: bytes) -> None:
        with self.fs.open_output_stream(path) as stream:
            stream.write(data)

    def _children(self) -> list[str]:
        selector = pafs.FileSelector(self.dir, allow_not_found=True)
        return sorted(
            info.base_name
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.Directory
        )

    def list(self) -> list[str]:
        return [
            name
            for name in self._children()
            if not name.startswith(".") and self._exists(self._path(name, MANIFEST))
        ]

    def latest(self) -> str | None:
        ids = self.list()
        return ids[-1] if ids else None

    def latest_created_at(self) -> str | None:
        latest = self.latest()
        return self.manifest(latest).created_at if latest else None

    def manifest(self, snapshot_id: str | None = None) -> Manifest:
        text = self._read_text(self._path(self._resolve(snapshot_id), MANIFEST))
        return Manifest(**json.loads(text))

    def drift_report(self, snapshot_id: str | None = None) -> str:
        path = self._path(self._resolve(snapshot_id), DRIFT_REPORT)
        if not self._exists(path):
            return "no parent: nothing to compare with\n"
        return self._read_text(path)

    def load(self, snapshot_id: str | None = None) -> Snapshot:
        resolved = self._resolve(snapshot_id)
        tables = {
            name: pq.read_table(
                self._path(resolved, f"{name}.parquet"), schema=schema, filesystem=self.fs
            ).to_pandas()
            for name, schema in TABLES.items()
        }
        return Snapshot(self.manifest(resolved), **tables)

    def _resolve(self, snapshot_id: str | None) -> str:
        resolved = snapshot_id or self.latest()
        if resolved is None or not self._exists(self._path(resolved, MANIFEST)):
            raise FileNotFoundError(f"no snapshot {snapshot_id or '(latest)'} in {self.dir}")
        return resolved

    def prune(self, keep: int) -> builtins.list[str]:
        """Delete all but the newest ``keep`` snapshots (and crashed cuts' leftovers)."""
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        kept = set(self.list()[-keep:])
        doomed = [name for name in self._children() if name not in kept]
        removed = []
        for name in doomed:
            path = self._path(name)
            if name.startswith(".tmp-") or not self._exists(self._path(name, MANIFEST)):
                mtime = self.fs.get_file_info(path).mtime  # None for S3 "directories"
                if mtime is None or time.time() - mtime.timestamp() < STALE_TMP_SECONDS:
                    continue  # a cut may be writing it right now
            else:
                removed.append(name)
            if self.local:
                for child in Path(path).iterdir():
                    child.chmod(0o644)
            self.fs.delete_dir(path)
        return removed

    def cut(
        self,
        journal: Journal,
        *,
        bounds: drift.DriftBounds | None = None,
        scale_high: int = 5,
    ) -> Manifest:
        """Build a snapshot of everything in the journal; reuse the latest if nothing is new."""
        offsets = {str(p): list(r) for p, r in sorted(journal.offset_ranges().items())}
        if not offsets:
            raise EmptyJournalError(f"nothing journaled yet in {journal.dir}")
        parent_id = self.latest()
        parent = self.manifest(parent_id) if parent_id else None
        if parent is not None and parent.offsets == offsets:
            return parent
        events, rejected = journal.read()
        frame = events.to_pandas().drop_duplicates(["partition", "offset"])
        tables = {
            "ratings": latest_ratings(frame),
            "watches": watch_history(frame),
            "users": users_seen(frame),
            "movies": movies_seen(frame),
        }
        profile, report = _drift(frame, rejected, parent, bounds or drift.DriftBounds(), scale_high)

        now = datetime.now(UTC)
        snapshot_id = f"{now:%Y%m%dT%H%M%S%fZ}"
        building = self._path(f".tmp-{snapshot_id}" if self.local else snapshot_id)
        self.fs.create_dir(building)
        digest = hashlib.sha256()
        for name, table in tables.items():
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            data = sink.getvalue().to_pybytes()
            digest.update(data)
            self._write_bytes(f"{building}/{name}.parquet", data)
        manifest = Manifest(
            snapshot_id=snapshot_id,
            created_at=now.isoformat(),
            schema_version=SCHEMA_VERSION,
            topic=journal.dir.name,
            parent=parent_id,
            offsets=offsets,
            rows={name: t.num_rows for name, t in tables.items()},
            rejected=dict(sorted(rejected.items())),
            content_hash=digest.hexdigest(),
            suspect=bool(report and report.suspect),
            profile=profile.as_dict(),
            drift=report.as_dict() if report else None,
        )
        if report is not None:
            self._write_bytes(f"{building}/{DRIFT_REPORT}", report.render().encode())
            if report.suspect:
                log.warning("snapshot %s is SUSPECT:\n%s", snapshot_id, report.render())
        # The manifest last: on object stores its presence is what makes the snapshot exist.
        self._write_bytes(f"{building}/{MANIFEST}", json.dumps(asdict(manifest), indent=2).encode())
        if self.local:
            for path in Path(building).iterdir():
                path.chmod(0o444)
            os.replace(building, self._path(snapshot_id))
        return manifest


def _drift(
    frame: pd.DataFrame,
    rejected: dict[str, int],
    parent: Manifest | None,
    bounds: drift.DriftBounds,
    scale_high: int,
) -> tuple[drift.Profile, drift.DriftReport | None]:
    """Profile the events this cut adds over its parent and compare with the parent's."""
    seen_before = pd.Series(False, index=frame.index)
    if parent is not None:
        for partition, (_, last) in parent.offsets.items():
            seen_before |= (frame["partition"] == int(partition)) & (frame["offset"] <= last)
    window, before = frame[~seen_before], frame[seen_before]
    rejected_now = sum(rejected.values()) - (sum(parent.rejected.values()) if parent else 0)
    movies_before = before["movie_id"].dropna().unique()
    profile = drift.profile(
        window, rejected_now, set(before["user_id"].unique()), set(movies_before), scale_high
    )
    if parent is None or not parent.profile:
        return profile, None
    return profile, drift.compare(drift.Profile.from_dict(parent.profile), profile, bounds)


def latest_ratings(frame: pd.DataFrame) -> pa.Table:
    """One row per (user, movie): the rating given last (by time, then stream offset)."""
    rates = frame[frame["kind"] == "rate"].sort_values(["time", "partition", "offset"])
    latest = rates.drop_duplicates(["user_id", "movie_id"], keep="last")
    latest = latest.sort_values(["user_id", "movie_id"])[RATINGS.names]
    return pa.Table.from_pandas(latest, schema=RATINGS, preserve_index=False)


def watch_history(frame: pd.DataFrame) -> pa.Table:
    """One row per (user, movie): distinct minutes watched, first and last watch time."""
    watches = frame.loc[frame["kind"] == "watch", ["user_id", "movie_id", "minute", "time"]]
    # pyarrow's group-by, not pandas': the refresher calls this per batch of a few events,
    # where pandas' named aggregations cost ~25 ms of set-up each time (arrow: ~1 ms).
    table = pa.Table.from_pandas(watches, preserve_index=False)
    grouped = (
        table.group_by(["user_id", "movie_id"], use_threads=False)
        .aggregate([("minute", "count_distinct"), ("time", "min"), ("time", "max")])
        .sort_by([("user_id", "ascending"), ("movie_id", "ascending")])
    )
    columns = ["user_id", "movie_id", "minute_count_distinct", "time_min", "time_max"]
    return pa.table([grouped[c] for c in columns], names=WATCHES.names).cast(WATCHES)


def users_seen(frame: pd.DataFrame) -> pa.Table:
    """One row per user mentioned by any accepted event."""
    by_user = frame.groupby("user_id", sort=True)
    users = by_user.agg(
        first_seen=("time", "min"), last_seen=("time", "max"), events=("offset", "size")
    )
    for column, kind in (("rated", "rate"), ("watched", "watch")):
        of_kind = frame[frame["kind"] == kind]
        users[column] = of_kind.groupby("user_id")["movie_id"].nunique()
    users = users.fillna({"rated": 0, "watched": 0}).reset_index()
    return pa.Table.from_pandas(users[USERS.names], schema=USERS, preserve_index=False)


def movies_seen(frame: pd.DataFrame) -> pa.Table:
    """One row per movie rated or watched, with its latest-rating count and mean."""
    touched = frame[frame["kind"].isin(["rate", "watch"])]
    movies = touched.groupby("movie_id", sort=True).agg(
        first_seen=("time", "min"), last_seen=("time", "max")
    )
    ratings = latest_ratings(frame).to_pandas().groupby("movie_id")["rating"]
    movies["ratings"] = ratings.size()
    movies["rating_mean"] = ratings.mean()
    movies["watchers"] = (
        touched[touched["kind"] == "watch"].groupby("movie_id")["user_id"].nunique()
    )
    movies = movies.fillna({"ratings": 0, "watchers": 0}).reset_index()
    return pa.Table.from_pandas(movies[MOVIES.names], schema=MOVIES, preserve_index=False)


def open_store(data_dir: Path | None = None) -> SnapshotStore:
    """The snapshot store of every stage: SNAPSHOT_URI when set, else ``data_dir`` (a
    caller's own data directory), else RECSYS_DATA_DIR. The one way to build one."""
    return SnapshotStore(snapshot_location(data_dir))


def pick_snapshot(
    snapshot_id: str | None = None,
    *,
    root: Path,
    topic: str,
    location: Path | str | None = None,
    bounds: drift.DriftBounds | None = None,
    scale_high: int = 5,
) -> str:
    """The snapshot a retrain should use: the one named, else a fresh cut of the journal
    (which is the latest snapshot again when nothing new arrived), else the latest.

    ``root`` holds the journal; ``location`` the snapshots when they live elsewhere.
    Whether it is fit to train on is ``validate_snapshot``'s question.
    """
    store = SnapshotStore(location or root)
    if snapshot_id:
        return store.manifest(snapshot_id).snapshot_id
    if Journal(root, topic).segments():
        return store.cut(Journal(root, topic), bounds=bounds, scale_high=scale_high).snapshot_id
    return store.manifest().snapshot_id


def validate_snapshot(
    store: SnapshotStore,
    snapshot_id: str,
    *,
    allow_suspect: bool = False,
    min_movies: int = LIST_LENGTH,
) -> Manifest:
    """The snapshot's manifest if a model may learn from it; raises ``SnapshotRefusedError``.

    Refused: a snapshot the drift check marked suspect, unless ``allow_suspect`` (a person
    should read its report first); one with no user, no rating and no watch; one with fewer
    movies than a list holds (``min_movies``), from which no model can give anyone 20
    distinct movies; and one with fewer rows in any table than its parent, which can only
    mean lost data, since the journal it is cut from only grows.
    """
    manifest = store.manifest(snapshot_id)
    if manifest.suspect and not allow_suspect:
        raise SuspectSnapshotError(
            f"snapshot {snapshot_id} is suspect; read its drift report, then retrain "
            f"with allow_suspect=true if the shift is real:\n"
            f"{store.drift_report(snapshot_id)}"
        )
    rows = manifest.rows
    if not rows.get("users") or not rows.get("ratings", 0) + rows.get("watches", 0):
        raise SnapshotRefusedError(f"snapshot {snapshot_id} holds no interaction: {rows}")
    if rows.get("movies", 0) < min_movies:
        raise SnapshotRefusedError(
            f"snapshot {snapshot_id} has {rows.get('movies', 0)} movies, fewer than the "
            f"{min_movies} every list must hold"
        )
    if manifest.parent and manifest.parent in store.list():
        before = store.manifest(manifest.parent).rows
        shrunk = {name: (before[name], n) for name, n in rows.items() if n < before.get(name, 0)}
        if shrunk:
            raise SnapshotRefusedError(
                f"snapshot {snapshot_id} has fewer rows than its parent {manifest.parent} "
                f"(table: (parent, now)): {shrunk}; the journal lost data"
            )
    return manifest
