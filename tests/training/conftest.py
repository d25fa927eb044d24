"""Fixtures of the training tests: a simulated world's snapshot, per test module (each module
gets its own data directory, so the models one module registers never meet another's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.snapshot import SnapshotStore
from simulator.snapshots import simulated_snapshot
from training.interactions import Interactions

WORLD = {"users": 300, "movies": 150, "days": 30, "seed": 2}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A simulated world's snapshot in a fresh directory: ``WORLD`` above, or the test
    module's own ``WORLD`` when it defines one."""
    root = tmp_path_factory.mktemp("data")
    simulated_snapshot(root, **getattr(request.module, "WORLD", WORLD))
    return root


@pytest.fixture(scope="module")
def data(data_dir: Path) -> Interactions:
    return Interactions.from_snapshot(SnapshotStore(data_dir).load())
