"""A snapshot of the traffic simulator's world, cut in-process through the real ingest path.

Tests, the simulated leaderboard (``simulator.leaderboard``) and the docs' figures need
realistic data without a broker: the simulator's lines go through the event grammar into a
journal segment and ``SnapshotStore.cut`` makes the snapshot, exactly as the consumer would
(noise rejected, latest rating wins, watches aggregated). The simulator gives every user a
hidden taste vector, so a personalised model has something real to find.
"""

from __future__ import annotations

from pathlib import Path

from contracts.locations import DEFAULT_TOPIC
from ingest.events import parse_line
from ingest.journal import Journal, SegmentBuilder
from ingest.snapshot import Snapshot, SnapshotStore
from simulator.traffic import World

TOPIC = DEFAULT_TOPIC


def simulated_snapshot(
    root: Path, *, users: int, movies: int, days: float, seed: int = 0, noise: float = 0.0
) -> Snapshot:
    """Simulate ``days`` of a world into a journal under ``root`` and cut a snapshot of it."""
    journal = Journal(root, TOPIC)
    builder = SegmentBuilder(0)
    for offset, (_, line) in enumerate(
        World.build(users, movies, seed).generate(days, noise=noise)
    ):
        builder.add(offset, parse_line(line), line)
    journal.write(builder)
    store = SnapshotStore(root)
    manifest = store.cut(journal)
    return store.load(manifest.snapshot_id)
