"""SVD (Funk-style matrix factorisation) from scikit-surprise, trained on explicit ratings.

Surprise predicts ``mu + b_u + b_i + p_u . q_i``; for ranking one user's movies ``mu + b_u``
is a constant, so scoring uses ``p_u``, ``q_i`` and ``b_i`` only, and the artifact keeps
``mu``, ``b_u`` and the rating scale beside them for rating prediction (RMSE/MAE). Surprise
learns the movies' side; each user's ``b_u`` and ``p_u`` are then folded in from their
ratings (a ridge solve against ``q_i`` and ``mu + b_i``, ``training.foldin``), at fit time
and for any ratings later alike.

A rating predictor is a weak top-N ranker: it learns how much a user likes what they chose
to rate, not what they would choose, and users who only watched get no factors at all
(precompute and evaluation rank them by popularity). The leaderboard says where it stands.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.algorithm import Algorithm
from training.factors import FactorModel
from training.foldin import FoldIn, fitted
from training.interactions import Interactions
from training.settings import Settings


class SVD(Algorithm):
    name = "svd"

    def __init__(
        self, n_factors: int = 64, n_epochs: int = 20, seed: int = 42, fold_in_reg: float = 5.0
    ):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.seed = seed
        self.fold_in_reg = fold_in_reg  # the L2 penalty of the users' ridge solve

    @classmethod
    def from_settings(cls, settings: Settings) -> SVD:
        return cls(settings.svd_factors, settings.svd_epochs, settings.seed)

    def params(self) -> dict:
        return {
            "n_factors": self.n_factors,
            "n_epochs": self.n_epochs,
            "seed": self.seed,
            "fold_in_reg": self.fold_in_reg,
        }

    def surprise_algo(self):
        import surprise

        return surprise.SVD(
            n_factors=self.n_factors, n_epochs=self.n_epochs, random_state=self.seed
        )

    def fit(self, data: Interactions) -> FactorModel:
        if data.ratings.empty:
            raise ValueError("SVD learns from ratings and there are none")
        frame = pd.DataFrame(
            {
                "user": data.ratings["user_idx"],
                "item": data.ratings["item_idx"],
                "rating": data.ratings["rating"],
            }
        )
        trainset = _dataset(frame).build_full_trainset()
        algo = self.surprise_algo().fit(trainset)

        # Surprise numbers items in its own order; map back to ours. Its user side is not
        # kept: every user's [b_u, p_u] is folded in (a ridge solve against the movies'
        # factors and biases), so a user's factors are a function of their ratings alone.
        item_rows = np.array([trainset.to_raw_iid(i) for i in range(trainset.n_items)])
        item_factors = np.zeros((data.n_items, self.n_factors), dtype=np.float32)
        item_bias = np.zeros(data.n_items, dtype=np.float32)
        item_factors[item_rows] = algo.qi
        item_bias[item_rows] = algo.bi
        return fitted(
            FoldIn("ridge", numbers={"reg": self.fold_in_reg}),
            algorithm=self.name,
            data=data,
            item_factors=item_factors,
            item_bias=item_bias,
            global_mean=float(trainset.global_mean),
            rating_range=(float(trainset.rating_scale[0]), float(trainset.rating_scale[1])),
        )


def _dataset(frame: pd.DataFrame):
    """A surprise Dataset of (user, item, rating) rows; the scale is the ratings' own range."""
    import surprise

    low, high = float(frame["rating"].min()), float(frame["rating"].max())
    reader = surprise.Reader(rating_scale=(low, max(high, low + 1)))
    return surprise.Dataset.load_from_df(frame, reader)


def cross_validated_errors(ratings: pd.DataFrame, svd: SVD, folds: int = 5) -> dict[str, float]:
    """RMSE/MAE under surprise's own k-fold random CV on ``ratings`` (user_id, movie_id,
    rating): the protocol behind surprise's published figures, so ours can be compared
    with them (about 0.93 RMSE on MovieLens-100K). Not the leaderboard's protocol."""
    from surprise.model_selection import KFold, cross_validate

    frame = pd.DataFrame(
        {"user": ratings["user_id"], "item": ratings["movie_id"], "rating": ratings["rating"]}
    )
    result = cross_validate(
        svd.surprise_algo(),
        _dataset(frame),
        measures=["rmse", "mae"],
        cv=KFold(n_splits=folds, random_state=svd.seed, shuffle=True),
    )
    return {
        f"cv{folds}_rmse": float(np.mean(result["test_rmse"])),
        f"cv{folds}_mae": float(np.mean(result["test_mae"])),
    }
