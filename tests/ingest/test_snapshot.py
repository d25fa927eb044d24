"""Journal and snapshots: latest rating wins, watches aggregate, manifests tell the truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.events import parse_line
from ingest.journal import Journal, SegmentBuilder
from ingest.snapshot import (
    SnapshotRefusedError,
    SnapshotStore,
    pick_snapshot,
    validate_snapshot,
)

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


def test_validate_refuses_thin_and_shrunk_snapshots(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "movielog")
    store = SnapshotStore(tmp_path)
    write_lines(journal, LINES)
    two_movies = store.cut(journal).snapshot_id
    with pytest.raises(SnapshotRefusedError, match="2 movies, fewer than the 20"):
        validate_snapshot(store, two_movies)
    assert validate_snapshot(store, two_movies, min_movies=2).snapshot_id == two_movies

    # A segment lost from the journal: the next cut has fewer rows than its parent.
    more = [f"2025-01-03T10:00:00,{u},GET /rate/movie+{u}+2000=3" for u in range(4, 9)]
    write_lines(journal, more, start=len(LINES))
    whole = store.cut(journal).snapshot_id
    assert validate_snapshot(store, whole, min_movies=2).parent == two_movies
    journal.segments()[-1].unlink()
    write_lines(journal, more[:1], start=len(LINES))
    with pytest.raises(SnapshotRefusedError, match="fewer rows than its parent"):
        validate_snapshot(store, store.cut(journal).snapshot_id, min_movies=2)


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
    assert manifest.rows == {"ratings": 2, "watches": 1, "users": 3, "movies": 2}
    users = snap.users.set_index("user_id")
    assert users.loc[1, "events"] == 5
    assert (users.loc[1, "rated"], users.loc[1, "watched"]) == (1, 1)
    assert users.loc[3, "events"] == 1  # an account, nothing else yet
    movies = snap.movies.set_index("movie_id")
    assert movies.loc["heat+1995", "rating_mean"] == 5.0  # the re-rating, not the first
    assert (movies.loc["heat+1995", "watchers"], movies.loc["alien+1979", "watchers"]) == (1, 0)
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


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "movielog")
    store = SnapshotStore(tmp_path)
    ids = []
    for start in range(0, len(LINES), 3):
        write_lines(journal, LINES[start : start + 3], start=start)
        ids.append(store.cut(journal).snapshot_id)
    assert store.prune(keep=2) == ids[:-2]
    assert store.list() == ids[-2:]
    assert store.load().snapshot_id == ids[-1]
    with pytest.raises(ValueError):
        store.prune(keep=0)


def test_identical_journals_give_identical_content_hashes(tmp_path: Path) -> None:
    """Segment boundaries differ, the rows do not: the hash is of the content."""
    one, two = Journal(tmp_path / "a", "movielog"), Journal(tmp_path / "b", "movielog")
    write_lines(one, LINES)
    write_lines(two, LINES[:4])
    write_lines(two, LINES[4:], start=4)
    assert (
        SnapshotStore(tmp_path / "a").cut(one).content_hash
        == SnapshotStore(tmp_path / "b").cut(two).content_hash
    )


def test_snapshots_on_an_object_store(tmp_path: Path, s3_env: str) -> None:
    """Same API on S3: cut, list, load, prune; the manifest is the commit marker."""
    journal = Journal(tmp_path, "movielog")
    store = SnapshotStore(f"s3://tansu/snapshots?{s3_env}")
    assert store.list() == []
    write_lines(journal, LINES[:4])
    first = store.cut(journal)
    write_lines(journal, LINES[4:], start=4)
    second = store.cut(journal)
    assert store.list() == [first.snapshot_id, second.snapshot_id]
    assert second.parent == first.snapshot_id
    snap = store.load()
    assert snap.manifest == second
    assert dict(zip(snap.ratings["movie_id"], snap.ratings["rating"], strict=True)) == {
        "heat+1995": 5,
        "alien+1979": 4,
    }
    # A half-written snapshot (no manifest yet) is invisible to readers.
    store.fs.create_dir(f"{store.dir}/99991231T000000000000Z")
    assert store.latest() == second.snapshot_id
    # Identical content on disk and on S3.
    local = SnapshotStore(tmp_path).cut(journal)
    assert local.content_hash == second.content_hash
    assert store.prune(keep=1) == [first.snapshot_id]
    assert store.list() == [second.snapshot_id]


def test_a_planted_shift_marks_the_snapshot_suspect_and_training_refuses_it(
    tmp_path: Path,
) -> None:
    from ingest.snapshot import SuspectSnapshotError
    from simulator.traffic import simulate_lines

    lines = [
        line.decode() for line in simulate_lines(users=2500, movies=300, days=4, seed=21, noise=0.0)
    ]
    days = sorted({line[:10] for line in lines})
    first_half = [line for line in lines if line[:10] <= days[1]]
    second_half = lines[len(first_half) :]
    journal = Journal(tmp_path, "movielog")
    store = SnapshotStore(tmp_path)
    write_lines(journal, first_half)
    parent = store.cut(journal)
    assert not parent.suspect and parent.drift is None  # nothing to compare the first with

    # Same world, next days, but every rating above 2 stars reported as 1: a broken client.
    shifted = [
        line[:-1] + "1" if "GET /rate/" in line and line[-1] in "345" else line
        for line in second_half
    ]
    write_lines(journal, shifted, start=len(first_half))
    child = store.cut(journal)
    assert child.suspect
    failed = {check["name"] for check in child.drift["checks"] if not check["ok"]}
    assert {"rating_mean", "rating_histogram"} <= failed
    assert "volume" not in failed
    report = store.drift_report(child.snapshot_id)
    assert report.startswith("SUSPECT") and "rating mean" in report

    assert pick_snapshot(root=tmp_path, topic="movielog") == child.snapshot_id
    with pytest.raises(SuspectSnapshotError, match="suspect"):
        validate_snapshot(store, child.snapshot_id)
    assert validate_snapshot(store, child.snapshot_id, allow_suspect=True).suspect


def test_the_same_days_again_are_not_suspect(tmp_path: Path) -> None:
    from simulator.traffic import simulate_lines

    lines = [
        line.decode() for line in simulate_lines(users=2500, movies=300, days=4, seed=22, noise=0.0)
    ]
    days = sorted({line[:10] for line in lines})
    first_half = [line for line in lines if line[:10] <= days[1]]
    journal = Journal(tmp_path, "movielog")
    store = SnapshotStore(tmp_path)
    write_lines(journal, first_half)
    store.cut(journal)
    write_lines(journal, lines[len(first_half) :], start=len(first_half))
    child = store.cut(journal)
    assert child.drift is not None and not child.suspect, store.drift_report()


def test_cli_cuts_lists_shows_and_prunes(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "RECSYS_DATA_DIR": str(tmp_path), "KAFKA_TOPIC": "movielog"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ingest", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    empty = cli("snapshot")
    assert empty.returncode == 1 and "nothing journaled" in empty.stderr
    journal = Journal(tmp_path, "movielog")
    write_lines(journal, LINES[:4])
    first = json.loads(cli("snapshot").stdout)
    write_lines(journal, LINES[4:], start=4)
    second = json.loads(cli("snapshot").stdout)
    assert cli("list").stdout.split() == [first["snapshot_id"], "ok", second["snapshot_id"], "ok"]
    assert json.loads(cli("show", first["snapshot_id"]).stdout)["rows"]["ratings"] == 1
    assert "not judged" in cli("drift").stdout  # nine lines cannot be judged statistically
    assert cli("prune", "--keep", "1").stdout.strip() == f"deleted {first['snapshot_id']}"
    assert cli("--help").returncode == 0
