"""Random scores: the floor every model must clear by far.

Scores are products of seeded Gaussian user and item vectors, so each user gets a different,
arbitrary order of the catalogue through the same one-GEMM artifact as every other model
(with 32 dimensions the orders are as good as independent for top-20 lists).
"""

from __future__ import annotations

import numpy as np

from training.algorithm import Algorithm
from training.factors import FactorModel
from training.interactions import Interactions
from training.settings import Settings


class RandomScores(Algorithm):
    name = "random"

    def __init__(self, dims: int = 32, seed: int = 42):
        self.dims = dims
        self.seed = seed

    @classmethod
    def from_settings(cls, settings: Settings) -> RandomScores:
        return cls(seed=settings.seed)

    def params(self) -> dict:
        return {"dims": self.dims, "seed": self.seed}

    def fit(self, data: Interactions) -> FactorModel:
        rng = np.random.default_rng(self.seed)
        return FactorModel(
            algorithm=self.name,
            user_ids=data.user_ids,
            item_ids=data.item_ids,
            user_factors=rng.standard_normal((data.n_users, self.dims), dtype=np.float32),
            item_factors=rng.standard_normal((data.n_items, self.dims), dtype=np.float32),
            item_bias=np.zeros(data.n_items, dtype=np.float32),
        )
