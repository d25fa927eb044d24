"""Journal and snapshots: latest rating wins, watches aggregate, manifests tell the truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.events import parse_line
from ingest.journal import Journal, SegmentBuilder
from ingest.snapshot import SnapshotStore, pick_snapshot

LINES = [
    "2025-01-01T10:00:00,1,GET /rate/heat+1995=2",
    "2025-01-01T10:00:01,1,GET /data/m/heat+1995/0.mpg",
    "2025-01-01T10:00:02,1,GET /data/m/heat+1995/1.mpg",
    "2025-01-01T10:00:03,1,GET /data/m/heat+1995/1.mpg",  # same minute again
    "2025-01-02T10:00:00,1,GET /rate/heat+1995=5",  # re-rating: this one wins
    "2025-01-01T11:00:00,2,GET /rate/alien+1979=4",
    "garbage line",
    "2025-01-01T11:00:00,2,GET /rate/alien+1979=9",
    "2025-01-01T12:00:00,3,GET /create_account",
]


def write_lines(journal: Journal, lines: list[str], partition: int = 0, start: int = 0) -> None:
    builder = SegmentBuilder(partition)
    for offset, line in enumerate(lines, start):
        raw = line.encode()
        builder.add(offset, parse_line(raw), raw)
    journal.write(builder)


def test_snapshot_contents_and_manifest(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "movielog")
    write_lines(journal, LINES)
    manifest = SnapshotStore(tmp_path).cut(journal)
    snap = SnapshotStore(tmp_path).load()

    ratings = {(r.user_id, r.movie_id): r.rating for r in snap.ratings.itertuples()}
    assert ratings == {(1, "heat+1995"): 5, (2, "alien+1979"): 4}
    watches = snap.watches.set_index(["user_id", "movie_id"])
    assert watches.loc[(1, "heat+1995"), "minutes"] == 2
    assert str(watches.loc[(1, "heat+1995"), "first_time"]) == "2025-01-01 10:00:01"
    assert str(watches.loc[(1, "heat+1995"), "last_time"]) == "2025-01-01 10:00:03"

    assert manifest.offsets == {"0": [0, len(LINES) - 1]}
    assert manifest.rows == {"ratings": 2, "watches": 1}
    assert manifest.rejected == {"bad_fields": 1, "bad_rating": 1}
    assert manifest.parent is None
    assert len(manifest.content_hash) == 64
    # The quarantine keeps each rejected line with its reason.
    quarantined = [
        json.loads(line)
        for path in (tmp_path / "quarantine").rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert sorted(q["reason"] for q in quarantined) == ["bad_fields", "bad_rating"]
    assert {q["offset"] for q in quarantined} == {6, 7}


def test_snapshots_are_immutable_versions_with_parents(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "movielog")
    store = SnapshotStore(tmp_path)
    write_lines(journal, LINES[:3])
    first = store.cut(journal)
    assert store.cut(journal) == first  # nothing new: the same snapshot, not a copy
    write_lines(journal, LINES[3:], start=3)
    write_lines(journal, LINES[:2], partition=1)
    second = store.cut(journal)
    assert second.snapshot_id > first.snapshot_id
    assert second.parent == first.snapshot_id
    assert second.offsets == {"0": [0, len(LINES) - 1], "1": [0, 1]}
    assert store.list() == [first.snapshot_id, second.snapshot_id]
    # The first snapshot still loads unchanged, and its files are read-only.
    assert store.load(first.snapshot_id).manifest == first
    for path in (tmp_path / "snapshots" / first.snapshot_id).iterdir():
        assert not path.stat().st_mode & 0o222
    assert not list((tmp_path / "snapshots").glob(".tmp-*"))


def test_journal_positions_resume_after_the_last_durable_offset(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "movielog")
    assert journal.positions() == {}
    write_lines(journal, LINES[:4])
    write_lines(journal, LINES[4:], start=4)
    write_lines(journal, LINES[:2], partition=1, start=10)
    assert journal.positions() == {0: len(LINES), 1: 12}


def test_pick_snapshot(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        pick_snapshot(root=tmp_path, topic="movielog")
    journal = Journal(tmp_path, "movielog")
    write_lines(journal, LINES)
    cut = pick_snapshot(root=tmp_path, topic="movielog")
    assert pick_snapshot(root=tmp_path, topic="movielog") == cut
    assert pick_snapshot(cut, root=tmp_path, topic="movielog") == cut
    with pytest.raises(FileNotFoundError):
        pick_snapshot("nope", root=tmp_path, topic="movielog")
