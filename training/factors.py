"""The model artifact every algorithm produces: user and item factors plus an item bias.

Scores for a block of users are one dense matrix product, ``P[rows] @ Q.T + b``, which is
what lets precompute score a million users fast. SVD's factors, a neural model's user
embeddings and output layer, and popularity (zero-width factors, bias = log popularity) all
fit this form, so precompute never needs to know which algorithm it runs.

A model that also predicts ratings (SVD) carries the rest of its formula, ``mu + b_u``, in
the optional rating fields; ranking ignores them (they are constant per user), the offline
RMSE/MAE use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    from training.foldin import FoldIn

ARTIFACT = "model.npz"


class _RatingArrays(TypedDict, total=False):
    """The optional rating fields as saved in the artifact (absent for non-rating models)."""

    user_bias: np.ndarray
    global_mean: np.ndarray
    rating_range: np.ndarray


@dataclass(frozen=True)
class FactorModel:
    algorithm: str
    user_ids: np.ndarray  # int64, sorted: row i of user_factors belongs to user_ids[i]
    item_ids: np.ndarray  # str, sorted: row j of item_factors belongs to item_ids[j]
    user_factors: np.ndarray  # float32 [users, d]
    item_factors: np.ndarray  # float32 [items, d]
    item_bias: np.ndarray  # float32 [items]
    # Only for rating predictors: rating = mu + b_u + b_i + p_u . q_i, clipped to the range.
    user_bias: np.ndarray | None = None  # float32 [users]
    global_mean: float | None = None
    rating_range: tuple[float, float] | None = None
    # How a history becomes user factors (``training.foldin``): None for models that cannot
    # fold a user in (random scores) and for artifacts saved before folding in existed.
    fold_in: FoldIn | None = None

    @property
    def predicts_ratings(self) -> bool:
        return self.user_bias is not None and self.global_mean is not None

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Row of each user in this model, -1 for users it has never seen."""
        if len(self.user_ids) == 0:
            return np.full(len(user_ids), -1)
        pos = np.minimum(np.searchsorted(self.user_ids, user_ids), len(self.user_ids) - 1)
        return np.where(self.user_ids[pos] == user_ids, pos, -1)

    @cached_property
    def _items_with_bias(self) -> np.ndarray:
        """[d + 1, items]: the item factors with the bias as one more row, so that one
        product against users padded with a 1 adds the bias: no second pass over the block."""
        stacked = np.vstack([self.item_factors.T, self.item_bias[None, :]])
        return np.ascontiguousarray(stacked, dtype=np.float32)

    def score_block(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Scores of the users at ``rows`` against every item: float32 [len(rows), items].

        ``out`` (float32, that shape) is written instead of a new matrix: precompute reuses
        one buffer per thread, which keeps a million users' scoring allocation-free.
        """
        users = np.empty((len(rows), self.user_factors.shape[1] + 1), dtype=np.float32)
        users[:, :-1] = self.user_factors[rows]
        users[:, -1] = 1.0
        return np.matmul(users, self._items_with_bias, out=out)

    def predict_ratings(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings of (user row, item index) pairs; row -1 is a user never seen,
        who gets ``mu + b_i`` as surprise does. Only for models with ``predicts_ratings``."""
        if self.user_bias is None or self.global_mean is None:
            raise ValueError(f"{self.algorithm} does not predict ratings")
        known = rows >= 0
        safe = np.where(known, rows, 0)
        dot = np.einsum("ij,ij->i", self.user_factors[safe], self.item_factors[items])
        est = (
            self.global_mean
            + self.item_bias[items]
            + np.where(known, self.user_bias[safe] + dot, 0)
        )
        if self.rating_range is not None:
            est = np.clip(est, *self.rating_range)
        return est.astype(np.float64)

    def save(self, directory: Path) -> None:
        rating: _RatingArrays = {}
        fold: dict[str, np.ndarray] = {} if self.fold_in is None else self.fold_in.to_arrays()
        if self.user_bias is not None and self.global_mean is not None:
            rating = {"user_bias": self.user_bias, "global_mean": np.array(self.global_mean)}
            if self.rating_range is not None:
                rating["rating_range"] = np.array(self.rating_range, dtype=np.float64)
        np.savez(
            directory / ARTIFACT,
            algorithm=np.array(self.algorithm),
            user_ids=self.user_ids,
            item_ids=self.item_ids.astype(str),
            user_factors=self.user_factors,
            item_factors=self.item_factors,
            item_bias=self.item_bias,
            **rating,
            **fold,  # type: ignore[arg-type]
        )

    @classmethod
    def load(cls, directory: Path) -> FactorModel:
        from training.foldin import FoldIn

        with np.load(directory / ARTIFACT, allow_pickle=False) as z:
            return cls(
                algorithm=str(z["algorithm"]),
                user_ids=z["user_ids"],
                item_ids=z["item_ids"].astype(object),
                user_factors=z["user_factors"],
                item_factors=z["item_factors"],
                item_bias=z["item_bias"],
                user_bias=z.get("user_bias"),
                global_mean=float(z["global_mean"]) if "global_mean" in z else None,
                rating_range=tuple(z["rating_range"].tolist()) if "rating_range" in z else None,
                fold_in=FoldIn.from_arrays(z),
            )
