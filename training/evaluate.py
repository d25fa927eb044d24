"""The offline evaluation protocol and its leaderboard: one code path for every model.

1. Split every user's history by time (``training.split``): the latest 20% of each user's
   movies are held out; users with fewer than 5 movies only train.
2. Fit each model on the training part, with the whole catalogue's index.
3. For every user with held-out movies, score every movie (``FactorModel.score_block``, as
   precompute does; users a model has no factors for get popularity, as precompute gives
   them), drop the movies seen in training, take the top k (``training.topn``, the very
   selection production uses) and compare with the held-out movies (``training.ranking``).
4. Models that predict ratings are also scored on the held-out ratings (RMSE, MAE).
5. ``served``: the model the gate would promote on this data (``training.gate``'s rule and
   choice: the best NDCG@k among those clearly above popularity, GATE_MIN_LIFT; null if
   none is): what production would serve were these a retrain's candidates. Popularity,
   the gate's yardstick, is always evaluated.

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
from training.interactions import Interactions
from training.ranking import RankingMetrics, rating_errors
from training.settings import Settings
from training.split import GlobalSplit, TemporalSplit, global_split, temporal_split
from training.topn import exclude_seen, top_k

log = logging.getLogger(__name__)

BLOCK = 1024  # users scored at once: bounds memory at BLOCK x movies floats
PER_USER = "per-user"  # the protocol's split (``--split``); "global:SHARE" cuts everyone at once


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
    algorithm: Algorithm,
    split: TemporalSplit,
    k: int,
    seed: int = 0,
    *,
    train: Interactions | None = None,
) -> dict[str, float]:
    """Fit on ``train`` (default: the split's training part), evaluate, and add the fit
    time."""
    started = time.perf_counter()
    model = algorithm.fit(split.train if train is None else train)
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
    global_share: float | None = None,
    min_lift: float = 0.10,
) -> dict:
    """The protocol for several models on one split: ``{"k", "users", "models": {...},
    "served", "gate"}`` (``served``: see the module doc; ``min_lift`` is GATE_MIN_LIFT).

    ``global_share``: instead of the per-user split, one cut in time for everyone with
    this share of events before it (``global_leaderboard``; ``test_share`` and
    ``min_interactions`` then do not apply)."""
    from training.popularity import Popularity

    if not any(algo.name == Popularity.name for algo in algorithms):
        algorithms = [Popularity(), *algorithms]  # the gate's yardstick, for ``served``
    if global_share is not None:
        board = global_leaderboard(history, algorithms, train_share=global_share, k=k, seed=seed)
        return with_served(board, min_lift)
    split = temporal_split(history, test_share=test_share, min_interactions=min_interactions)
    if len(split.test_users) == 0:
        raise ValueError(f"no user of {history.source} has {min_interactions}+ movies to test on")
    models = {algo.name: fit_and_evaluate(algo, split, k, seed) for algo in algorithms}
    board = {
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
    return with_served(board, min_lift)


def with_served(board: dict, min_lift: float) -> dict:
    """``board`` with ``served``, the key of ``models`` the gate would promote (or None), and
    ``gate``, what it was judged by: the gate's own rule (``training.gate.served_choice``)."""
    from training.gate import GATE_METRIC, served_choice

    metric = f"{GATE_METRIC}@{board['k']}"
    models = board["models"]
    popularity = models["popularity"][metric]
    board["served"] = served_choice(
        {name: result[metric] for name, result in models.items()},
        popularity,
        metric=metric,
        min_lift=min_lift,
    )
    board["gate"] = {"metric": metric, "min_lift": min_lift, "popularity": popularity}
    return board


def fit_and_evaluate_global(
    algorithm: Algorithm, split: GlobalSplit, k: int, seed: int = 0
) -> dict[str, float]:
    """``fit_and_evaluate`` on a global split. The model learns from ``split.snapshot``
    (exactly what a snapshot of the events before the cut indexes, so it is the model a
    retrain on that snapshot fits) and is evaluated as precompute and the service would
    answer: users it has no factors for, the cold-start users included, get popularity
    over the snapshot, their history (if any) excluded, which is the cold-start list for
    a user with none."""
    return fit_and_evaluate(algorithm, split, k, seed, train=split.snapshot)


def global_leaderboard(
    history: History,
    algorithms: list[Algorithm],
    *,
    train_share: float = 0.8,
    k: int = 20,
    seed: int = 0,
) -> dict:
    """The leaderboard on one cut in time for everyone (``training.split.global_split``):
    what the live service is judged on by ``python -m devstack.eval_served``."""
    split = global_split(history, train_share=train_share)
    if len(split.test_users) == 0:
        raise ValueError(f"no user of {history.source} has a new movie after {split.cutoff}")
    models = {algo.name: fit_and_evaluate_global(algo, split, k, seed) for algo in algorithms}
    return {
        "k": k,
        "users": len(split.test_users),
        "source": history.source,
        "protocol": {
            "split": "global by time",
            "train_share": train_share,
            "cutoff": str(split.cutoff),
            "train_events": split.train_events,
            "train_users": split.snapshot.n_users,
            "cold_users": len(split.cold_users),
            "movies": split.train.n_items,
            "new_movies": len(split.new_movies),
            "held_out": int(split.test.nnz),
        },
        "models": models,
    }


def parse_split(text: str) -> float | None:
    """``--split``: "per-user" (None) or "global:SHARE" (the share of events before the cut)."""
    if text == PER_USER:
        return None
    kind, _, share = text.partition(":")
    try:
        value = float(share)
    except ValueError:
        value = -1.0
    if kind != "global" or not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected {PER_USER!r} or 'global:SHARE' with 0 < SHARE < 1"
        )
    return value


def movie_columns(split: TemporalSplit, movie_ids: list[str]) -> np.ndarray:
    """Column of each movie ID in the split's catalogue, -1 for a movie it does not hold:
    lists produced elsewhere (the live service's answers) as ``top_lists`` gives them."""
    items = split.train.item_ids
    ids = np.asarray(movie_ids, dtype=object)
    if len(ids) == 0 or len(items) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(items, ids), len(items) - 1)
    return np.where(items[pos] == ids, pos, -1).astype(np.int64)


def evaluate_lists(
    split: TemporalSplit, users: np.ndarray, lists: list[list[str]], k: int, seed: int = 0
) -> dict[str, float]:
    """The protocol's ranking metrics (``training.ranking``, as ``evaluate_model``) of lists
    made elsewhere: ``lists[i]`` (movie IDs, best first) is what user ``users[i]`` (a row
    of the split) got. A movie the catalogue does not hold counts as a miss; a short list
    is padded with misses."""
    if len(users) != len(lists):
        raise ValueError(f"{len(users)} users but {len(lists)} lists")
    top = np.full((len(users), k), -1, dtype=np.int64)
    for row, movies in enumerate(lists):
        columns = movie_columns(split, movies[:k])
        top[row, : len(columns)] = columns
    metrics = RankingMetrics(k, split.train.n_items, seed=seed)
    for lo in range(0, len(users), BLOCK):
        metrics.add(top[lo : lo + BLOCK], split.test[users[lo : lo + BLOCK]])
    return metrics.result(split.train.seen)


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
        "--split",
        type=parse_split,
        default=None,
        metavar="SPLIT",
        help=f"{PER_USER!r} (default: each user's latest $EVAL_TEST_SHARE held out) or "
        "'global:SHARE': one cut in time for everyone, SHARE of the events before it, each "
        "user's new movies after it held out (what devstack.eval_served asks the service for)",
    )
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
    return run(load_history(args, settings), args, settings)


def load_history(args: argparse.Namespace, settings: Settings) -> History:
    """The history ``--ratings FILE`` or ``--snapshot [ID]`` names."""
    if args.ratings:
        return History.from_movielens(args.ratings)
    from ingest.snapshot import open_store

    return History.from_snapshot(open_store(settings.data_dir).load(args.snapshot or None))


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
        global_share=getattr(args, "split", None),
        min_lift=settings.gate_min_lift,
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
