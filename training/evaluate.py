"""The offline evaluation protocol and its leaderboard: one code path for every model.

1. Split every user's history by time (``training.split``): the latest 20% of each user's
   movies are held out; users with fewer than 5 movies only train.
2. Fit each model on the training part, with the whole catalogue's index.
3. For every user with held-out movies, score every movie (``FactorModel.score_block``, as
   precompute does; users a model has no factors for get popularity, as precompute gives
   them), drop the movies seen in training, take the top k (``training.topn``, the very
   selection production uses) and compare with the held-out movies (``training.ranking``).
4. Models that predict ratings are also scored on the held-out ratings (RMSE, MAE).

``python -m training.evaluate --ratings FILE`` runs it on a MovieLens ratings file,
``--snapshot [ID]`` on a snapshot, and prints one JSON object (``python -m
simulator.leaderboard`` runs the same on a simulated world).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from training.algorithm import Algorithm
from training.factors import FactorModel
from training.history import History
from training.ranking import RankingMetrics, rating_errors
from training.settings import Settings
from training.split import TemporalSplit, temporal_split
from training.topn import exclude_seen, top_k

log = logging.getLogger(__name__)

BLOCK = 1024  # users scored at once: bounds memory at BLOCK x movies floats


def top_lists(
    model: FactorModel, split: TemporalSplit, users: np.ndarray, k: int, block: int = BLOCK
):
    """(users of the block, their top-k movie indices) for ``users`` (rows of the split)."""
    train = split.train
    if not np.array_equal(model.item_ids, train.item_ids):
        raise ValueError(f"{model.algorithm} was not fitted on this split's catalogue")
    popular = np.log1p(train.popularity()).astype(np.float32)
    rows = model.user_rows(train.user_ids[users])
    for lo in range(0, len(users), block):
        block_users, block_rows = users[lo : lo + block], rows[lo : lo + block]
        known = block_rows >= 0
        scores = np.empty((len(block_users), train.n_items), dtype=np.float32)
        if known.any():
            scores[known] = model.score_block(block_rows[known])
        scores[~known] = popular
        exclude_seen(scores, train.seen[block_users])
        yield block_users, top_k(scores, k)


def evaluate_model(
    model: FactorModel, split: TemporalSplit, k: int, seed: int = 0
) -> dict[str, float]:
    """Every metric of the protocol for one fitted model."""
    users = split.test_users
    metrics = RankingMetrics(k, split.train.n_items, seed=seed)
    for block_users, top in top_lists(model, split, users, k):
        metrics.add(top, split.test[block_users])
    result = metrics.result(split.train.seen)
    if model.predicts_ratings and len(split.test_ratings):
        held = split.test_ratings
        rows = model.user_rows(split.train.user_ids[held["user_idx"].to_numpy()])
        predicted = model.predict_ratings(rows, held["item_idx"].to_numpy())
        result.update(rating_errors(predicted, held["rating"].to_numpy()))
    return result


def fit_and_evaluate(
    algorithm: Algorithm, split: TemporalSplit, k: int, seed: int = 0
) -> dict[str, float]:
    """Fit on the split's training part, evaluate, and add the fit time."""
    started = time.perf_counter()
    model = algorithm.fit(split.train)
    fit_seconds = time.perf_counter() - started
    result = evaluate_model(model, split, k, seed)
    result["fit_seconds"] = round(fit_seconds, 3)
    log.info("%s: ndcg@%d %.4f (fit %.1fs)", algorithm.name, k, result[f"ndcg@{k}"], fit_seconds)
    return result


def leaderboard(
    history: History,
    algorithms: list[Algorithm],
    *,
    k: int = 20,
    test_share: float = 0.2,
    min_interactions: int = 5,
    seed: int = 0,
) -> dict:
    """The protocol for several models on one split: ``{"k", "users", "models": {...}}``."""
    split = temporal_split(history, test_share=test_share, min_interactions=min_interactions)
    if len(split.test_users) == 0:
        raise ValueError(f"no user of {history.source} has {min_interactions}+ movies to test on")
    models = {algo.name: fit_and_evaluate(algo, split, k, seed) for algo in algorithms}
    return {
        "k": k,
        "users": len(split.test_users),
        "source": history.source,
        "protocol": {
            "split": "per-user by time",
            "test_share": test_share,
            "min_interactions": min_interactions,
            "train_users": split.train.n_users,
            "movies": split.train.n_items,
            "held_out": int(split.test.nnz),
        },
        "models": models,
    }


def parser(*, sources: bool = True) -> argparse.ArgumentParser:
    """The leaderboard's options; ``sources=False`` leaves out where the data comes from,
    for a caller that brings its own (``simulator.leaderboard``)."""
    from training.train import ALGORITHMS

    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="Run the offline evaluation protocol (per-user temporal split, top-k "
        "metrics on held-out movies) on a MovieLens ratings file or a snapshot, and print "
        "the leaderboard as one JSON object. Model settings come from the environment "
        "(training/settings.py).",
    )
    if sources:
        _add_sources(parser)
    _add_options(parser, list(ALGORITHMS))
    return parser


def _add_sources(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--ratings", metavar="FILE", help="MovieLens ratings: u.data, ratings.dat or ratings.csv"
    )
    source.add_argument(
        "--snapshot",
        metavar="ID",
        nargs="?",
        const="",
        help="a snapshot of $RECSYS_DATA_DIR (no ID: the latest)",
    )


def _add_options(parser: argparse.ArgumentParser, algorithms: list[str]) -> None:
    parser.add_argument("--k", type=int, default=None, help="list length (default $EVAL_K, 20)")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=algorithms,
        default=algorithms,
        help="models to evaluate (default: all)",
    )
    parser.add_argument("--report", metavar="DIR", type=Path, help="write leaderboard.md/.png here")
    parser.add_argument(
        "--svd-cv",
        action="store_true",
        help="also give SVD's RMSE/MAE under surprise's 5-fold random CV (the protocol of "
        "surprise's published figures) as cv5_rmse/cv5_mae",
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    if args.ratings:
        history = History.from_movielens(args.ratings)
    else:
        from ingest.snapshot import open_store

        history = History.from_snapshot(open_store(settings.data_dir).load(args.snapshot or None))
    return run(history, args, settings)


def run(history: History, args: argparse.Namespace, settings: Settings) -> int:
    """The leaderboard of ``history`` under ``parser``'s options, printed as JSON."""
    from training.train import make_algorithm

    board = leaderboard(
        history,
        [make_algorithm(name, settings) for name in args.models],
        k=args.k or settings.eval_k,
        test_share=settings.eval_test_share,
        min_interactions=settings.eval_min_interactions,
        seed=settings.seed,
    )
    if args.svd_cv and "svd" in board["models"]:
        from training.svd import SVD, cross_validated_errors

        svd = make_algorithm("svd", settings)
        assert isinstance(svd, SVD)
        board["models"]["svd"].update(cross_validated_errors(history.ratings, svd, folds=5))
    if args.report:
        from training.leaderboard_report import write_report

        for path in write_report(board, args.report):
            log.info("wrote %s", path)
    print(json.dumps(board))
    return 0


if __name__ == "__main__":
    sys.exit(main())
