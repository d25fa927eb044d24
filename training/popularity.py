"""Most popular first: the non-personalised baseline, and the cold-start list."""

from __future__ import annotations

import numpy as np

from training.algorithm import Algorithm
from training.factors import FactorModel
from training.foldin import FoldIn, fitted
from training.interactions import Interactions


class Popularity(Algorithm):
    name = "popularity"

    def params(self) -> dict:
        return {}

    def fit(self, data: Interactions) -> FactorModel:
        """Zero-width factors for everyone (any history folds in to them), log popularity
        as the bias."""
        return fitted(
            FoldIn("constant"),
            algorithm=self.name,
            data=data,
            item_factors=np.zeros((data.n_items, 0), dtype=np.float32),
            item_bias=np.log1p(data.popularity()).astype(np.float32),
        )
