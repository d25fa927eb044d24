"""SVD (Funk-style matrix factorisation) from scikit-surprise, trained on explicit ratings.

Surprise predicts ``mu + b_u + b_i + p_u . q_i``; for ranking one user's movies ``mu + b_u``
is a constant, so the exported factors keep ``p_u``, ``q_i`` and ``b_i`` only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.algorithm import Algorithm
from training.factors import FactorModel
from training.interactions import Interactions
from training.settings import Settings


class SVD(Algorithm):
    name = "svd"

    def __init__(self, n_factors: int = 64, n_epochs: int = 20, seed: int = 42):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.seed = seed

    @classmethod
    def from_settings(cls, settings: Settings) -> SVD:
        return cls(settings.svd_factors, settings.svd_epochs, settings.seed)

    def params(self) -> dict:
        return {"n_factors": self.n_factors, "n_epochs": self.n_epochs, "seed": self.seed}

    def fit(self, data: Interactions) -> FactorModel:
        import surprise

        frame = pd.DataFrame(
            {
                "user": data.ratings["user_idx"],
                "item": data.ratings["item_idx"],
                "rating": data.ratings["rating"],
            }
        )
        low, high = float(frame["rating"].min()), float(frame["rating"].max())
        reader = surprise.Reader(rating_scale=(low, max(high, low + 1)))
        trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
        algo = surprise.SVD(
            n_factors=self.n_factors, n_epochs=self.n_epochs, random_state=self.seed
        ).fit(trainset)

        # Surprise numbers users and items in its own order; map back to ours.
        user_rows = np.array([trainset.to_raw_uid(i) for i in range(trainset.n_users)])
        item_rows = np.array([trainset.to_raw_iid(i) for i in range(trainset.n_items)])
        user_factors = np.zeros((data.n_users, self.n_factors), dtype=np.float32)
        item_factors = np.zeros((data.n_items, self.n_factors), dtype=np.float32)
        item_bias = np.zeros(data.n_items, dtype=np.float32)
        user_factors[user_rows] = algo.pu
        item_factors[item_rows] = algo.qi
        item_bias[item_rows] = algo.bi
        rated = np.zeros(data.n_users, dtype=bool)
        rated[user_rows] = True
        return FactorModel(
            algorithm=self.name,
            user_ids=data.user_ids[rated],
            item_ids=data.item_ids,
            user_factors=user_factors[rated],
            item_factors=item_factors,
            item_bias=item_bias,
        )
