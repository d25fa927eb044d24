"""Train one algorithm on a snapshot and register the result: the step the DAG calls."""

from __future__ import annotations

import logging
import time

from ingest.snapshot import open_store
from training.algorithm import Algorithm
from training.interactions import Interactions
from training.neural import MultDAE
from training.popularity import Popularity
from training.random_scores import RandomScores
from training.registry import ModelMeta, ModelRegistry
from training.settings import Settings
from training.svd import SVD

log = logging.getLogger(__name__)

# Every model there is, weakest first (the leaderboard's order). torch and surprise are
# imported inside fit(), so this table is cheap to import.
ALGORITHMS: dict[str, type[Algorithm]] = {
    "random": RandomScores,
    "popularity": Popularity,
    "svd": SVD,
    "multdae": MultDAE,
}
DEFAULT_ALGORITHM = "multdae"


def make_algorithm(name: str, settings: Settings, params: dict | None = None) -> Algorithm:
    """The algorithm ``name`` configured from ``settings``, or rebuilt from recorded params."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose from {sorted(ALGORITHMS)}")
    cls = ALGORITHMS[name]
    return cls.from_settings(settings) if params is None else cls.from_params(params, settings)


def train(
    algorithm: str = DEFAULT_ALGORITHM,
    snapshot_id: str | None = None,
    settings: Settings | None = None,
) -> ModelMeta:
    """Fit ``algorithm`` on a snapshot (default: the latest) and save it as a new version."""
    settings = settings or Settings.from_env()
    snapshot = open_store(settings.data_dir).load(snapshot_id)
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
