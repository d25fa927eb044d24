"""The model interface: every algorithm's artifact honours the scoring contract, the neural
model is seeded and reproducible, artifacts round-trip, the DAG offers every algorithm."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from training.factors import FactorModel
from training.interactions import Interactions
from training.neural import MultDAE, auto_batch
from training.settings import Settings
from training.train import ALGORITHMS, make_algorithm, train

REPO = Path(__file__).resolve().parents[2]


def quick_settings(root: Path) -> Settings:
    return Settings(data_dir=root, svd_epochs=5, neural_epochs=5, neural_device="cpu")


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_algorithm_produces_a_scoring_artifact(name: str, data: Interactions) -> None:
    algo = make_algorithm(name, quick_settings(Path(".")))
    model = algo.fit(data)
    assert model.algorithm == name
    assert np.array_equal(model.item_ids, data.item_ids)
    assert np.all(np.diff(model.user_ids) > 0) and np.isin(model.user_ids, data.user_ids).all()
    rows = np.arange(min(7, len(model.user_ids)))
    scores = model.score_block(rows)
    assert scores.shape == (len(rows), data.n_items) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    # The gate refits a registered model from its recorded parameters: same recipe.
    rebuilt = make_algorithm(name, quick_settings(Path(".")), algo.params())
    assert type(rebuilt) is type(algo) and rebuilt.params() == algo.params()


def test_personalised_models_give_users_different_orders(data: Interactions) -> None:
    model = MultDAE(epochs=5, device="cpu").fit(data)
    tops = {tuple(np.argsort(-row)[:10]) for row in model.score_block(np.arange(50))}
    assert len(tops) > 25
    popular = make_algorithm("popularity", quick_settings(Path("."))).fit(data)
    assert len({tuple(np.argsort(-r)[:10]) for r in popular.score_block(np.arange(50))}) == 1


def test_neural_model_is_seeded_and_reproducible(data: Interactions) -> None:
    one = MultDAE(epochs=3, seed=7, device="cpu").fit(data)
    two = MultDAE(epochs=3, seed=7, device="cpu").fit(data)
    other = MultDAE(epochs=3, seed=8, device="cpu").fit(data)
    for field in ("user_factors", "item_factors", "item_bias"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    assert not np.allclose(one.item_factors, other.item_factors)


def test_neural_model_embeds_users_it_did_not_train_on(data: Interactions) -> None:
    """With a cap on training users, every user still gets factors from the encoder."""
    capped = MultDAE(epochs=3, max_train_users=50, device="cpu").fit(data)
    assert capped.user_factors.shape == (data.n_users, 64)
    assert np.abs(capped.user_factors).sum(axis=1).min() > 0


def test_auto_batch_gives_small_snapshots_enough_steps() -> None:
    assert auto_batch(300) == 32
    assert auto_batch(5_000) == 100
    assert auto_batch(1_000_000) == 500


def test_artifact_round_trip_keeps_the_rating_head(data: Interactions, tmp_path: Path) -> None:
    model = make_algorithm("svd", quick_settings(tmp_path)).fit(data)
    assert model.predicts_ratings
    model.save(tmp_path)
    loaded = FactorModel.load(tmp_path)
    assert loaded.global_mean == pytest.approx(model.global_mean)
    assert loaded.rating_range == model.rating_range
    rows, items = np.array([0, 1, -1]), np.array([3, 4, 5])
    np.testing.assert_allclose(
        loaded.predict_ratings(rows, items), model.predict_ratings(rows, items)
    )
    low, high = model.rating_range
    assert (
        (model.predict_ratings(rows, items) >= low) & (model.predict_ratings(rows, items) <= high)
    ).all()

    plain = make_algorithm("popularity", quick_settings(tmp_path)).fit(data)
    (tmp_path / "p").mkdir()
    plain.save(tmp_path / "p")
    again = FactorModel.load(tmp_path / "p")
    assert not again.predicts_ratings
    np.testing.assert_array_equal(again.score_block(np.arange(3)), plain.score_block(np.arange(3)))
    with pytest.raises(ValueError, match="does not predict ratings"):
        again.predict_ratings(rows, items)


def test_train_registers_the_default_neural_model(data_dir: Path) -> None:
    meta = train(settings=quick_settings(data_dir))
    assert meta.algorithm == "multdae"
    assert meta.params["epochs"] == 5 and meta.fit_seconds > 0
    assert (data_dir / "models" / meta.version / "model.npz").exists()


def test_the_dag_offers_every_algorithm() -> None:
    tree = ast.parse((REPO / "dags" / "recsys_retrain.py").read_text())
    choices = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(getattr(t, "id", None) == "ALGORITHM_CHOICES" for t in node.targets)
    )
    assert sorted(choices) == sorted(ALGORITHMS)
    assert choices[0] == "multdae"
