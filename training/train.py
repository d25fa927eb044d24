"""Train one algorithm on a snapshot and register the result: the step the DAG calls."""

from __future__ import annotations

import logging
import time

from ingest.snapshot import SnapshotStore
from training.algorithm import Algorithm
from training.interactions import Interactions
from training.popularity import Popularity
from training.registry import ModelMeta, ModelRegistry
from training.settings import Settings
from training.svd import SVD

log = logging.getLogger(__name__)

ALGORITHMS: dict[str, type[Algorithm]] = {"svd": SVD, "popularity": Popularity}


def make_algorithm(name: str, settings: Settings) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose from {sorted(ALGORITHMS)}")
    return ALGORITHMS[name].from_settings(settings)


def train(
    algorithm: str = "svd", snapshot_id: str | None = None, settings: Settings | None = None
) -> ModelMeta:
    """Fit ``algorithm`` on a snapshot (default: the latest) and save it as a new version."""
    settings = settings or Settings.from_env()
    snapshot = SnapshotStore(settings.data_dir).load(snapshot_id)
    data = Interactions.from_snapshot(snapshot)
    algo = make_algorithm(algorithm, settings)
    started = time.perf_counter()
    model = algo.fit(data)
    elapsed = time.perf_counter() - started
    meta = ModelRegistry(settings.data_dir).save(
        model, params=algo.params(), snapshot_id=snapshot.snapshot_id, fit_seconds=elapsed
    )
    log.info("trained %s on %s in %.1fs", meta.version, snapshot.snapshot_id, elapsed)
    return meta
