"""Tuning (``training.tune``): no test row of the evaluation protocol ever reaches it; it
chooses the best point of the grid on validation; ``training.train`` builds models from its
file and the registry records the choice with its validation scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.snapshot import SnapshotStore
from training import tune
from training.__main__ import main as training_main
from training.history import History
from training.registry import ModelRegistry
from training.settings import Settings
from training.split import TemporalSplit, temporal_split
from training.train import make_algorithm

GRIDS = {
    "ease": {"lam": [100.0, 500.0], "recency": ["none", "rank"], "tau": [4.0, 8.0]},
    "puresvd": {"factors": [8, 16]},
}
WORLD = {"users": 250, "movies": 120, "days": 20, "seed": 5}  # the data_dir fixture's world


@pytest.fixture(scope="module")
def history(data_dir: Path) -> History:
    return History.from_snapshot(SnapshotStore(data_dir).load())


def pairs(split: TemporalSplit, matrix: Any) -> set[tuple[int, str]]:
    """(user ID, movie ID) of every entry of a users x movies matrix of ``split``."""
    coo = matrix.tocoo()
    users, movies = split.train.user_ids[coo.row], split.train.item_ids[coo.col]
    return set(zip(users.tolist(), movies.tolist(), strict=True))


def test_no_test_row_reaches_tuning(
    history: History, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every (user, movie) the tuner fits on or validates against, as a watch, a rating or
    a held-out movie, is in the protocol's training part; none is in its test part."""
    seen: set[tuple[int, str]] = set()
    fits = []

    def recording(algorithm, split, k, seed=0):
        fits.append(algorithm.name)
        seen.update(pairs(split, split.train.seen), pairs(split, split.test))
        rated = split.train.ratings
        users = split.train.user_ids[rated["user_idx"].to_numpy()]
        movies = split.train.item_ids[rated["item_idx"].to_numpy()]
        seen.update(zip(users.tolist(), movies.tolist(), strict=True))
        return real(algorithm, split, k, seed)

    real = tune.fit_and_evaluate
    monkeypatch.setattr(tune, "fit_and_evaluate", recording)
    settings = Settings(data_dir=data_dir)
    result = tune.tune(history, ["ease", "puresvd"], settings, GRIDS)

    outer = temporal_split(history)
    train_pairs, test_pairs = pairs(outer, outer.train.seen), pairs(outer, outer.test)
    # The settings' values, then the grid's points (recency "none" once per lam).
    assert test_pairs and fits.count("ease") == 1 + 2 * 3 and fits.count("puresvd") == 1 + 2
    assert seen <= train_pairs
    assert not seen & test_pairs
    # The tuner's validation part is each user's latest training movies: a real hold-out.
    assert result["protocol"]["held_out"] > 0
    assert result["protocol"]["train_pairs"] + result["protocol"]["held_out"] == len(train_pairs)


def test_the_best_validation_point_is_chosen_and_recorded(history: History, data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir)
    result = tune.tune(history, ["ease"], settings, {"ease": GRIDS["ease"]})
    ease = result["models"]["ease"]
    trials = ease["trials"]
    # The settings' own values first, then the grid: recency "none" once per lam.
    assert trials[0]["point"] == "settings"
    assert len(trials) == 1 + 2 * (1 + 2)
    best = max(trials, key=lambda trial: trial["ndcg@20"])
    assert ease["params"] == best["params"]
    assert ease["validation"]["ndcg@20"] == best["ndcg@20"]
    plain = [t for t in trials if t["params"]["recency"] == "none"]
    assert ease["best_without_recency"]["ndcg@20"] == max(t["ndcg@20"] for t in plain)
    assert result["metric"] == "ndcg@20" and result["source"] == history.source


def test_training_takes_the_tuned_params_and_the_registry_records_them(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RECSYS_DATA_DIR", str(data_dir))
    monkeypatch.setattr(tune, "GRIDS", {**tune.GRIDS, "ease": {"lam": [50.0, 3000.0]}})
    out = data_dir / "tuned.json"
    assert tune.main(["--snapshot", "--models", "ease", "--out", str(out)]) == 0
    tuned = json.loads(out.read_text())
    chosen = tuned["models"]["ease"]
    assert json.loads(capsys.readouterr().out)["models"]["ease"]["params"] == chosen["params"]

    assert training_main(["train", "--algorithm", "ease", "--params", str(out)]) == 0
    meta = ModelRegistry(data_dir).meta()
    assert meta.algorithm == "ease" and meta.params == chosen["params"]
    assert meta.tuning["params"] == chosen["params"]
    assert meta.tuning["validation"] == chosen["validation"]
    assert meta.tuning["file"] == str(out) and meta.tuning["source"] == tuned["source"]

    # TUNED_PARAMS does the same for every entry point; a model it does not name keeps the
    # settings' values.
    settings = Settings(data_dir=data_dir, tuned_params=out)
    assert make_algorithm("ease", settings).params() == chosen["params"]
    default = make_algorithm("puresvd", Settings(data_dir=data_dir)).params()
    assert make_algorithm("puresvd", settings).params() == default
    assert np.isclose(chosen["params"]["lam"], [841.0, 50.0, 3000.0]).any()
