"""Train one algorithm on a snapshot and register the result: the step the DAG calls.

With TUNED_PARAMS (or ``python -m training train --params FILE``) naming a file written by
``python -m training.tune``, a model that file names is built from the parameters chosen
there on a validation split, not from the settings, and its metadata in the registry says
so (``tuning``: the file, the values and their validation scores).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ingest.snapshot import open_store
from training.algorithm import Algorithm
from training.ease import EASE
from training.ials import IALS
from training.interactions import Interactions
from training.neural import MultDAE
from training.popularity import Popularity
from training.puresvd import PureSVD
from training.random_scores import RandomScores
from training.registry import ModelMeta, ModelRegistry
from training.settings import Settings
from training.svd import SVD

log = logging.getLogger(__name__)

# Every model there is, weakest first (the leaderboard's order on MovieLens-100K,
# docs/MODELS.md). torch, surprise and implicit are imported inside fit(), so this table is
# cheap to import.
ALGORITHMS: dict[str, type[Algorithm]] = {
    "random": RandomScores,
    "popularity": Popularity,
    "svd": SVD,
    "ials": IALS,
    "puresvd": PureSVD,
    "multdae": MultDAE,
    "ease": EASE,
}
DEFAULT_ALGORITHM = "multdae"


def make_algorithm(name: str, settings: Settings, params: dict | None = None) -> Algorithm:
    """The algorithm ``name`` rebuilt from recorded ``params``; else with the parameters
    chosen for it in the TUNED_PARAMS file, if that names it; else configured from
    ``settings``."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose from {sorted(ALGORITHMS)}")
    cls = ALGORITHMS[name]
    if params is None and (tuned := tuning_record(settings, name)):
        params = tuned["params"]
    return cls.from_settings(settings) if params is None else cls.from_params(params, settings)


def tuning_record(settings: Settings, name: str) -> dict[str, Any] | None:
    """What the TUNED_PARAMS file (``training.tune``'s output) says of model ``name``: its
    chosen ``params`` and their ``validation`` scores, plus the file's provenance (``file``,
    ``source``, ``created_at``, ``metric``); None without a file or when it names no such
    model."""
    if settings.tuned_params is None:
        return None
    path = Path(settings.tuned_params)
    tuned = json.loads(path.read_text())
    model = tuned.get("models", {}).get(name)
    if model is None:
        return None
    return {
        "file": str(path),
        "source": tuned.get("source"),
        "created_at": tuned.get("created_at"),
        "metric": tuned.get("metric"),
        "params": model["params"],
        "validation": model["validation"],
    }


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
        model,
        params=algo.params(),
        snapshot_id=snapshot.snapshot_id,
        fit_seconds=elapsed,
        tuning=tuning_record(settings, algorithm),
    )
    log.info("trained %s on %s in %.1fs", meta.version, snapshot.snapshot_id, elapsed)
    return meta
