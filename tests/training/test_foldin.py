"""Folding in (``training.foldin``): for every model the gate can promote, the user factors
``fit`` saves are exactly (bitwise) what folding the same histories into the saved artifact
gives, whoever else is folded in with them; a history the model never saw gets factors that
move its scores; and a model without a fold-in keeps what it was fit with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingest.snapshot import SnapshotStore
from training.factors import FactorModel
from training.foldin import fold_in_users, on_catalogue
from training.interactions import Interactions
from training.settings import Settings
from training.train import make_algorithm

# Every model the gate can promote, and EASE's exact form (rank >= movies) besides.
PROMOTABLE = ["ease", "ease-exact", "puresvd", "ials", "multdae", "svd", "popularity"]


def fit_saved(name: str, data: Interactions, root: Path) -> tuple[FactorModel, FactorModel]:
    """(the fitted model, the same artifact saved and loaded back)."""
    settings = Settings(data_dir=root, neural_epochs=3, neural_device="cpu", svd_epochs=5)
    if name == "ease-exact":
        algorithm = make_algorithm("ease", settings, {"rank": data.n_items + 1, "lam": 50.0})
    else:
        algorithm = make_algorithm(name, settings)
    model = algorithm.fit(data)
    model.save(root)
    return model, FactorModel.load(root)


def frames(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    snapshot = SnapshotStore(root).load()
    return snapshot.ratings, snapshot.watches


@pytest.mark.parametrize("name", PROMOTABLE)
def test_fit_time_factors_are_the_folded_in_factors(
    name: str, data: Interactions, data_dir: Path, tmp_path: Path
) -> None:
    model, loaded = fit_saved(name, data, tmp_path)
    assert loaded.fold_in is not None and loaded.fold_in.kind == model.fold_in.kind  # type: ignore[union-attr]

    folded = fold_in_users(loaded, data)
    np.testing.assert_array_equal(folded.user_ids, model.user_ids)
    np.testing.assert_array_equal(folded.user_factors, model.user_factors)
    if model.user_bias is not None:
        np.testing.assert_array_equal(folded.user_bias, model.user_bias)

    # One user at a time, from the snapshot's own rows put on the model's catalogue (what
    # the refresher does): the same factors, bitwise, as with everyone at once.
    ratings, watches = frames(data_dir)
    for user in model.user_ids[:: max(1, len(model.user_ids) // 15)]:
        alone = on_catalogue(
            ratings[ratings["user_id"] == user],
            watches[watches["user_id"] == user],
            loaded.item_ids,
        )
        one = fold_in_users(loaded, alone)
        row = model.user_rows(np.array([user]))[0]
        np.testing.assert_array_equal(one.user_factors[0], model.user_factors[row])


@pytest.mark.parametrize("name", ["ease", "puresvd", "ials", "multdae", "svd"])
def test_a_history_the_model_never_saw_folds_in(
    name: str, data: Interactions, data_dir: Path, tmp_path: Path
) -> None:
    """A new user who rated a known user's movies gets that user's factors; three more
    movies change them, and so the scores; movies outside the catalogue are ignored."""
    _, loaded = fit_saved(name, data, tmp_path)
    ratings, watches = frames(data_dir)
    user = int(ratings["user_id"].value_counts().index[0])  # someone with ratings (svd)
    mine = ratings[ratings["user_id"] == user].assign(user_id=10**9)
    theirs = watches[watches["user_id"] == user].assign(user_id=10**9)
    known = fold_in_users(loaded, on_catalogue(mine, theirs, loaded.item_ids))
    original = loaded.user_rows(np.array([user]))[0]
    np.testing.assert_array_equal(known.user_factors[0], loaded.user_factors[original])

    unseen = sorted(set(loaded.item_ids) - set(mine["movie_id"]) - set(theirs["movie_id"]))
    extra = pd.DataFrame(
        {
            "user_id": 10**9,
            "movie_id": [*unseen[:3], "not+in+the+catalogue+1999"],
            "rating": np.array([5, 1, 4, 5], dtype=np.int16),
            "time": mine["time"].max() + pd.to_timedelta(np.arange(1, 5), unit="h"),
        }
    )
    more = fold_in_users(loaded, on_catalogue(pd.concat([mine, extra]), theirs, loaded.item_ids))
    assert not np.allclose(more.user_factors[0], known.user_factors[0])
    assert not np.allclose(more.score_block(np.array([0])), known.score_block(np.array([0])))


def test_a_model_without_a_fold_in_keeps_its_fit_time_factors(
    data: Interactions, tmp_path: Path
) -> None:
    """Random scores cannot fold anyone in: known users keep their factors, others none."""
    model = make_algorithm("random", Settings(data_dir=tmp_path)).fit(data)
    assert model.fold_in is None
    stranger = Interactions(
        np.array([model.user_ids[3], 10**9]), data.item_ids, data.ratings[:0], data.seen[[3, 4]]
    )
    kept = fold_in_users(model, stranger)
    assert kept.user_ids.tolist() == [model.user_ids[3]]
    np.testing.assert_array_equal(kept.user_factors[0], model.user_factors[3])
