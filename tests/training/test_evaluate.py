"""The evaluation protocol: metrics against a naive reference, the temporal split, the
leaderboard on a simulated world (real held-out data), and the CLI's JSON and report."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from simulator.snapshots import simulated_snapshot
from simulator.traffic import World
from training.evaluate import evaluate_model, leaderboard
from training.factors import FactorModel
from training.history import History
from training.neural import MultDAE
from training.popularity import Popularity
from training.random_scores import RandomScores
from training.ranking import RankingMetrics, intra_list_diversity
from training.split import temporal_split
from training.svd import SVD

REPO = Path(__file__).resolve().parents[2]
WORLD = {"users": 800, "movies": 400, "days": 90, "seed": 5}
K = 20


def fast_dae(seed: int = 42) -> MultDAE:
    return MultDAE(seed=seed, device="cpu")  # the production defaults


# --- metrics ---------------------------------------------------------------------------


def naive_metrics(top: list[int], relevant: set[int], k: int) -> dict[str, float]:
    """Textbook definitions, one user, no vectorisation."""
    hits = [1 if (i >= 0 and i in relevant) else 0 for i in top[:k]]
    ideal = min(k, len(relevant))
    dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
    idcg = sum(1 / math.log2(r + 2) for r in range(ideal))
    ap = sum(sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits) if h) / ideal
    return {
        f"precision@{k}": sum(hits) / k,
        f"recall@{k}": sum(hits) / ideal,
        f"ndcg@{k}": dcg / idcg,
        f"map@{k}": ap,
        f"hit@{k}": float(any(hits)),
    }


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(3, 30), st.integers(1, 10), st.randoms(use_true_random=False))
def test_ranking_metrics_match_the_textbook(n_users: int, n_items: int, k: int, rnd) -> None:
    tops, rels = [], []
    for _ in range(n_users):
        order = list(range(n_items))
        rnd.shuffle(order)
        top = order[:k] + [-1] * max(0, k - n_items)
        if rnd.random() < 0.3:  # a short list, padded like top_k pads it
            cut = rnd.randint(0, min(k, n_items))
            top = top[:cut] + [-1] * (k - cut)
        tops.append(top)
        rels.append(set(rnd.sample(range(n_items), rnd.randint(1, n_items))))
    held = sparse.csr_matrix(
        [[1 if i in r else 0 for i in range(n_items)] for r in rels], dtype=np.int8
    )
    acc = RankingMetrics(k, n_items)
    acc.add(np.array(tops[:1], dtype=np.int64), held[:1])  # blocks add up to the same means
    acc.add(np.array(tops[1:], dtype=np.int64).reshape(-1, k), held[1:])
    got = acc.result(sparse.csr_matrix(np.ones((2, n_items))))
    for name in ("precision", "recall", "ndcg", "map", "hit"):
        key = f"{name}@{k}"
        expected = np.mean([naive_metrics(t, r, k)[key] for t, r in zip(tops, rels, strict=True)])
        assert got[key] == pytest.approx(expected, abs=1e-12), key
    listed = {i for t in tops for i in t if i >= 0}
    assert got["coverage"] == pytest.approx(len(listed) / n_items)


def test_diversity_is_one_for_disjoint_audiences_and_zero_for_identical() -> None:
    # Movies 0 and 1 were watched by the same two users; movie 2 by a third one only.
    seen = sparse.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.int8))
    assert intra_list_diversity([np.array([0, 1])], seen) == pytest.approx(0.0, abs=1e-6)
    assert intra_list_diversity([np.array([0, 2])], seen) == pytest.approx(1.0)
    assert intra_list_diversity([np.array([0, 1, 2])], seen) == pytest.approx(2 / 3)


# --- the split -------------------------------------------------------------------------


def test_split_holds_out_each_users_latest_fifth_by_first_contact() -> None:
    t0 = pd.Timestamp("2025-01-01")
    rows = []
    for user, count in ((1, 10), (2, 4), (3, 5)):
        for j in range(count):
            rows.append((user, f"m+{j:02d}+2000", 3.0, t0 + pd.Timedelta(hours=j)))
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "time"])
    # User 1 watched m+09 early and rated it last: first contact counts, so it trains,
    # and m+08 (the latest first contact) is held out with m+07.
    watches = pd.DataFrame(
        {
            "user_id": [1],
            "movie_id": ["m+09+2000"],
            "first_time": [t0 - pd.Timedelta(days=1)],
        }
    )
    split = temporal_split(History(ratings, watches, "test"), test_share=0.2, min_interactions=5)
    ids = split.train.item_ids
    held = {
        int(split.train.user_ids[u]): {ids[i] for i in split.test[u].indices}
        for u in split.test_users
    }
    assert held == {1: {"m+07+2000", "m+08+2000"}, 3: {"m+04+2000"}}  # user 2: train-only
    train_pairs = {
        (int(split.train.user_ids[u]), ids[i])
        for u, i in zip(*split.train.seen.nonzero(), strict=True)
    }
    assert (1, "m+08+2000") not in train_pairs and (3, "m+04+2000") not in train_pairs
    assert (1, "m+09+2000") in train_pairs and (2, "m+03+2000") in train_pairs
    assert len(train_pairs) == 19 - 3
    assert split.test_ratings["rating"].tolist() == [3.0, 3.0, 3.0]
    assert list(ids) == sorted(ratings["movie_id"].unique())  # the whole catalogue stays


# --- the leaderboard on a simulated world ------------------------------------------------


@pytest.fixture(scope="module")
def world_history(tmp_path_factory: pytest.TempPathFactory) -> History:
    root = tmp_path_factory.mktemp("world")
    return History.from_snapshot(simulated_snapshot(root, **WORLD))


def test_leaderboard_ranks_models_by_held_out_metrics(world_history: History) -> None:
    board = leaderboard(
        world_history, [RandomScores(), Popularity(), SVD(n_epochs=10), fast_dae()], k=K
    )
    models = board["models"]
    assert board["k"] == K and board["users"] > 200
    ndcg = {name: m[f"ndcg@{K}"] for name, m in models.items()}
    # The neural model finds the users' hidden tastes; popularity does not; random is noise.
    # +50% over popularity is the product's bar (this world gives about +110%).
    assert ndcg["multdae"] > 1.5 * ndcg["popularity"]
    assert ndcg["popularity"] > 3 * ndcg["random"]
    assert models["random"]["coverage"] > 0.9 > models["popularity"]["coverage"]
    assert 0 < models["multdae"]["diversity"] < 1
    assert "rmse" in models["svd"] and "rmse" not in models["multdae"]
    assert all(m["fit_seconds"] >= 0 for m in models.values())


def test_metrics_come_from_each_users_own_held_out_movies(world_history: History) -> None:
    """The same lists judged against other users' held-out movies score far worse: the
    figures measure per-user predictions, not list-wide popularity or a constant."""
    split = temporal_split(world_history)
    model = fast_dae().fit(split.train)
    honest = evaluate_model(model, split, K)[f"ndcg@{K}"]
    users = split.test_users
    shuffled_rows = split.test[users][np.random.default_rng(0).permutation(len(users))]
    test = sparse.lil_matrix(split.test.shape, dtype=np.int8)
    test[users] = shuffled_rows
    shuffled = evaluate_model(model, _with_test(split, test.tocsr()), K)[f"ndcg@{K}"]
    assert shuffled < 0.8 * honest


def test_the_true_tastes_beat_every_model(world_history: History) -> None:
    """An oracle built from the simulator's hidden tastes is the ceiling: the metric can
    tell a model that knows the users from one that does not."""
    split = temporal_split(world_history)
    world = World.build(WORLD["users"], WORLD["movies"], WORLD["seed"])
    train = split.train
    users = np.array([world.user_index(u) for u in train.user_ids])
    movies = np.array([world.movie_index(m) for m in train.item_ids])
    oracle = FactorModel(
        "oracle",
        train.user_ids,
        train.item_ids,
        (world.tastes[users] / world.temperature).astype(np.float32),
        world.movie_vectors[movies].astype(np.float32),
        np.log(world.popularity[movies]).astype(np.float32),
    )
    best = evaluate_model(oracle, split, K)[f"ndcg@{K}"]
    popular = evaluate_model(Popularity().fit(train), split, K)[f"ndcg@{K}"]
    assert best > 1.3 * popular


def _with_test(split, test: sparse.csr_matrix):
    from dataclasses import replace

    return replace(split, test=test)


# --- SVD's ratings and the CLI -------------------------------------------------------------


@pytest.fixture(scope="module")
def movielens_file(world_history: History, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world's ratings as a MovieLens u.data file (tab-separated, integer movie IDs)."""
    ratings = world_history.ratings
    movie_ids = {m: i + 1 for i, m in enumerate(sorted(ratings["movie_id"].unique()))}
    path = tmp_path_factory.mktemp("ml") / "u.data"
    frame = pd.DataFrame(
        {
            "user": ratings["user_id"],
            "movie": ratings["movie_id"].map(movie_ids),
            "rating": ratings["rating"].astype(int),
            "timestamp": ratings["time"].astype("int64") // 10**6,
        }
    )
    frame.to_csv(path, sep="\t", header=False, index=False)
    return path


def run_cli(*argv: str, env: dict | None = None, module: str = "training.evaluate") -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_cli_on_a_movielens_file_prints_the_leaderboard_and_writes_a_report(
    movielens_file: Path, tmp_path: Path
) -> None:
    out = run_cli(
        "--ratings",
        str(movielens_file),
        "--models",
        "popularity",
        "svd",
        "--svd-cv",
        "--report",
        str(tmp_path / "report"),
    )
    board = json.loads(out)
    assert board["k"] == 20 and board["users"] > 0
    assert set(board["models"]) == {"popularity", "svd"}
    for name in ("ndcg@20", "recall@20", "precision@20", "map@20", "hit@20", "coverage"):
        assert 0 <= board["models"]["popularity"][name] <= 1
    svd = board["models"]["svd"]
    # Better than predicting every rating as the training mean: SVD learned something.
    ratings = pd.read_csv(movielens_file, sep="\t", header=None)[2]
    assert svd["cv5_rmse"] < ratings.std() and svd["rmse"] < 1.5 * ratings.std()
    table = (tmp_path / "report" / "leaderboard.md").read_text()
    assert "| popularity |" in table and "| svd |" in table
    png = (tmp_path / "report" / "leaderboard.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_svd_movies_are_surprises_own_and_users_their_ridge_fold_in(
    world_history: History,
) -> None:
    """Surprise learns the movies' factors and biases (ours are its own); each user's
    ``[b_u, p_u]`` is the ridge solve of their stars against them (``training.foldin``):
    the normal equations hold, and predictions are ``mu + b_u + b_i + p_u . q_i``."""
    import surprise

    split = temporal_split(world_history)
    svd = SVD(n_factors=8, n_epochs=5, seed=3)
    model = svd.fit(split.train)
    ratings = split.train.ratings
    frame = pd.DataFrame(
        {"user": ratings["user_idx"], "item": ratings["item_idx"], "rating": ratings["rating"]}
    )
    low, high = frame["rating"].min(), frame["rating"].max()
    trainset = surprise.Dataset.load_from_df(
        frame, surprise.Reader(rating_scale=(low, high))
    ).build_full_trainset()
    algo = svd.surprise_algo().fit(trainset)
    items = np.array([trainset.to_raw_iid(i) for i in range(trainset.n_items)])
    np.testing.assert_allclose(model.item_factors[items], algo.qi, atol=1e-6)
    np.testing.assert_allclose(model.item_bias[items], algo.bi, atol=1e-6)
    assert model.global_mean == pytest.approx(trainset.global_mean)

    for user_idx in ratings["user_idx"].drop_duplicates().sample(20, random_state=0):
        mine = ratings[ratings["user_idx"] == user_idx]
        rated = mine["item_idx"].to_numpy()
        row = model.user_rows(split.train.user_ids[[user_idx]])[0]
        assert model.user_bias is not None
        solution = np.concatenate([[model.user_bias[row]], model.user_factors[row]])
        design = np.hstack([np.ones((len(rated), 1)), model.item_factors[rated]]).astype(float)
        target = mine["rating"].to_numpy(float) - model.global_mean - model.item_bias[rated]
        gradient = design.T @ (design @ solution - target) + svd.fold_in_reg * solution
        np.testing.assert_allclose(gradient, 0, atol=1e-3)
        predicted = model.predict_ratings(np.full(len(rated), row), rated)
        expected = np.clip(
            model.global_mean + design @ solution + model.item_bias[rated], low, high
        )
        np.testing.assert_allclose(predicted, expected, atol=1e-4)


def test_cli_on_a_simulated_world_prints_every_model_asked_for() -> None:
    board = json.loads(
        run_cli(
            "200,100,20,4",
            "--k",
            "10",
            "--models",
            "random",
            "popularity",
            module="simulator.leaderboard",
        )
    )
    assert board["k"] == 10 and board["source"] == "simulated world 200,100,20,4"
    assert list(board["models"]) == ["random", "popularity"]
    assert board["models"]["popularity"]["ndcg@10"] > board["models"]["random"]["ndcg@10"]
