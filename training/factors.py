"""The model artifact every algorithm produces: user and item factors plus an item bias.

Scores for a block of users are one dense matrix product, ``P[rows] @ Q.T + b``, which is
what lets precompute score a million users fast. SVD's factors, a neural model's user
embeddings and output layer, and popularity (zero-width factors, bias = log popularity) all
fit this form, so precompute never needs to know which algorithm it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ARTIFACT = "model.npz"


@dataclass(frozen=True)
class FactorModel:
    algorithm: str
    user_ids: np.ndarray  # int64, sorted: row i of user_factors belongs to user_ids[i]
    item_ids: np.ndarray  # str, sorted: row j of item_factors belongs to item_ids[j]
    user_factors: np.ndarray  # float32 [users, d]
    item_factors: np.ndarray  # float32 [items, d]
    item_bias: np.ndarray  # float32 [items]

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Row of each user in this model, -1 for users it has never seen."""
        if len(self.user_ids) == 0:
            return np.full(len(user_ids), -1)
        pos = np.minimum(np.searchsorted(self.user_ids, user_ids), len(self.user_ids) - 1)
        return np.where(self.user_ids[pos] == user_ids, pos, -1)

    def score_block(self, rows: np.ndarray) -> np.ndarray:
        """Scores of the users at ``rows`` against every item: shape [len(rows), items]."""
        scores = self.user_factors[rows] @ self.item_factors.T
        scores += self.item_bias
        return scores

    def save(self, directory: Path) -> None:
        np.savez(
            directory / ARTIFACT,
            algorithm=np.array(self.algorithm),
            user_ids=self.user_ids,
            item_ids=self.item_ids.astype(str),
            user_factors=self.user_factors,
            item_factors=self.item_factors,
            item_bias=self.item_bias,
        )

    @classmethod
    def load(cls, directory: Path) -> FactorModel:
        with np.load(directory / ARTIFACT, allow_pickle=False) as z:
            return cls(
                algorithm=str(z["algorithm"]),
                user_ids=z["user_ids"],
                item_ids=z["item_ids"].astype(object),
                user_factors=z["user_factors"],
                item_factors=z["item_factors"],
                item_bias=z["item_bias"],
            )
