"""Hyper-parameters chosen honestly: on a validation split carved out of the training part.

1. The evaluation protocol's split of the history (``training.split.temporal_split`` with
   EVAL_TEST_SHARE and EVAL_MIN_INTERACTIONS): its test part is the leaderboard's, and
   nothing here reads it again.
2. Its training part, as a history (every held-out pair gone, its ratings and watches
   alike), is split again by the same rule: each user's latest share of *training* movies
   is the validation part (``validation_split``).
3. For each model, every point of its declared grid (``GRIDS``; the parameters a grid does
   not name come from the settings, and the settings' own values are always tried too) is
   fitted on the validation split's training part and scored on its validation part with
   the leaderboard's code (``training.evaluate.fit_and_evaluate``). The point with the best
   NDCG@k is chosen (on a tie, the first tried).

Nothing is refitted or scored on the test part: the leaderboard (``python -m
training.evaluate`` with TUNED_PARAMS set to the output) then scores the chosen values once.
The output, one JSON file, has per model the chosen ``params`` (the constructor's keyword
arguments, as the registry records them), their ``validation`` metrics, every trial, the
grid, and the best trial without recency weighting (what recency gained on validation).
``python -m training train --params FILE`` or TUNED_PARAMS=FILE trains with it, and the
registry keeps the choice and its validation scores in the model's metadata (``tuning``).

    python -m training.tune --ratings FILE | --snapshot [ID] [--models ...] [--out FILE]

``make tune`` runs it on MovieLens-100K (about three minutes on two cores).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluate import fit_and_evaluate, load_history
from training.history import History
from training.settings import Settings
from training.split import TemporalSplit, temporal_split
from training.train import ALGORITHMS

log = logging.getLogger(__name__)

# Each model's declared grid: constructor keyword -> values tried, around the values chosen on
# MovieLens-100K's validation split (docs/MODELS.md). "recency": "none" is always among them,
# so the output says what recency weighting gains; tau and floor do not apply without it.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "ease": {
        "lam": [300.0, 841.0, 2000.0],
        "pop_exponent": [0.0, 0.241],
        "recency": ["none", "rank"],
        "tau": [4.0, 8.1, 16.0],
    },
    "puresvd": {
        "factors": [24, 33, 50],
        "pop_norm": [0.0, 0.127],
        "recency": ["none", "relrank"],
        "tau": [0.1, 0.169, 0.3],
    },
    "ials": {
        "factors": [16, 32],
        "regularization": [0.0572, 5.74],
        "alpha": [3.22, 5.01],
        "recency": ["none", "time"],
    },
    "multdae": {
        "epochs": [40, 100],
        "recency": ["none", "relrank"],
        "tau": [0.1, 0.2, 0.3],
    },
}
RANKING = ("ndcg", "recall", "precision", "map", "hit")  # each @k, kept per trial
WITHOUT_RECENCY = ("tau", "floor")  # parameters that mean nothing with recency "none"


def training_part(history: History, split: TemporalSplit) -> History:
    """``history`` without the pairs ``split`` holds out (their ratings and watches alike):
    exactly what the split's models train on, as a history that can be split again."""
    user_ids, item_ids = split.train.user_ids, split.train.item_ids
    n_items = len(item_ids)
    held = split.test.tocoo()
    held_keys = np.sort(held.row.astype(np.int64) * n_items + held.col)

    def kept(frame):
        rows = np.searchsorted(user_ids, frame["user_id"].to_numpy()).astype(np.int64)
        cols = np.searchsorted(item_ids, frame["movie_id"].to_numpy(dtype=object))
        return frame[~np.isin(rows * n_items + cols, held_keys)]

    return History(kept(history.ratings), kept(history.watches), f"{history.source}:train")


def validation_split(
    history: History, *, test_share: float = 0.2, min_interactions: int = 5
) -> TemporalSplit:
    """The protocol's split applied to the protocol's training part (see the module doc)."""
    outer = temporal_split(history, test_share=test_share, min_interactions=min_interactions)
    return temporal_split(
        training_part(history, outer), test_share=test_share, min_interactions=min_interactions
    )


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``grid``'s values, in order; without recency, tau and floor are
    dropped (they change nothing), so such points are tried once."""
    points, keys = [], set()
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values, strict=True))
        if point.get("recency") == "none":
            point = {k: v for k, v in point.items() if k not in WITHOUT_RECENCY}
        key = json.dumps(point, sort_keys=True)
        if key not in keys:
            keys.add(key)
            points.append(point)
    return points


def tune_model(
    name: str, split: TemporalSplit, settings: Settings, grid: dict[str, list[Any]]
) -> dict[str, Any]:
    """Every point of ``grid`` (and the settings' own values) on the validation ``split``."""
    cls = ALGORITHMS[name]
    base = cls.from_settings(settings).params()
    k = settings.eval_k
    metric = f"ndcg@{k}"
    trials: list[dict[str, Any]] = []
    tried: set[str] = set()
    for point in [{}, *grid_points(grid)]:
        params = {**base, **point}
        if params.get("recency") == "none":
            params = {**params, **{p: base[p] for p in WITHOUT_RECENCY if p in base}}
        key = json.dumps(params, sort_keys=True, default=str)
        if key in tried:
            continue
        tried.add(key)
        algorithm = cls.from_params(params, settings)
        result = fit_and_evaluate(algorithm, split, k, settings.seed)
        trials.append(
            {
                "point": point or "settings",
                "params": algorithm.params(),
                **{f"{m}@{k}": round(result[f"{m}@{k}"], 5) for m in RANKING},
                "coverage": round(result["coverage"], 5),
                "fit_seconds": result["fit_seconds"],
            }
        )
        log.info("tune %s %s: %s %.4f", name, point or "settings", metric, result[metric])
    best = max(trials, key=lambda trial: trial[metric])
    plain = [t for t in trials if t["params"].get("recency", "none") == "none"]
    without_recency = None
    if plain:
        best_plain = max(plain, key=lambda trial: trial[metric])
        without_recency = {"params": best_plain["params"], metric: best_plain[metric]}
    scores = [*(f"{m}@{k}" for m in RANKING), "coverage", "fit_seconds"]
    return {
        "params": best["params"],
        "validation": {score: best[score] for score in scores},
        "best_without_recency": without_recency,
        "grid": grid,
        "trials": trials,
    }


def tune(
    history: History,
    models: list[str],
    settings: Settings,
    grids: dict[str, dict[str, list[Any]]] | None = None,
) -> dict[str, Any]:
    """Choose each model's parameters on the validation split of ``history`` over ``grids``
    (default ``GRIDS``)."""
    grids = GRIDS if grids is None else grids
    started = time.perf_counter()
    split = validation_split(
        history,
        test_share=settings.eval_test_share,
        min_interactions=settings.eval_min_interactions,
    )
    if len(split.test_users) == 0:
        raise ValueError(f"{history.source}: no user left to validate on")
    chosen = {name: tune_model(name, split, settings, grids[name]) for name in models}
    return {
        "source": history.source,
        "created_at": datetime.now(UTC).isoformat(),
        "metric": f"ndcg@{settings.eval_k}",
        "protocol": {
            "split": "per-user by time, of the per-user-by-time split's training part",
            "test_share": settings.eval_test_share,
            "min_interactions": settings.eval_min_interactions,
            "validation_users": len(split.test_users),
            "train_pairs": int(split.train.seen.nnz),
            "held_out": int(split.test.nnz),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "models": chosen,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.tune",
        description="Choose each model's hyper-parameters on a validation split carved out of "
        "the evaluation protocol's training part (the test part is never read), over a small "
        "declared grid; write the chosen values and their validation scores as JSON, for "
        "TUNED_PARAMS or `python -m training train --params`.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ratings", metavar="FILE", help="MovieLens ratings file")
    source.add_argument(
        "--snapshot", metavar="ID", nargs="?", const="", help="a snapshot (no ID: the latest)"
    )
    parser.add_argument(
        "--models", nargs="+", choices=list(GRIDS), default=list(GRIDS), help="default: all"
    )
    parser.add_argument(
        "--out", type=Path, help="where to write (default $RECSYS_DATA_DIR/tuned.json)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    result = tune(load_history(args, settings), args.models, settings)
    out = args.out or settings.data_dir / "tuned.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    summary = {
        name: {"params": model["params"], "validation": model["validation"]}
        for name, model in result["models"].items()
    }
    print(json.dumps({"out": str(out), "models": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
