"""The top-N SVD, PureSVD (Cremonesi, Koren and Turrin, 2010): a truncated SVD of what users
saw, scored by folding each user's history in.

Unlike surprise's SVD (``training.svd``), which fits the stars of rated movies and so learns
how much a user likes what they chose to rate, PureSVD factors the whole implicit matrix,
missing entries as zeros: it learns what users choose, which is what a top-N list predicts.
``X D ~ U S V^T`` at rank ``factors`` (scipy's ARPACK ``svds``, seeded), with the columns
scaled by ``D = diag(popularity^-pop_norm)`` first so that popular movies do not take every
factor; a user's scores are then ``x_u D V V^T``: the user's weighted history
(``training.weighting``) projected onto the movies' factors and back. That is a
``FactorModel`` with user factors ``X_w D V`` and movie factors ``V``, so a user's factors
come from their history alone (folding in): the daily precompute could embed a user with
new events without a refit.

Cost is an ARPACK run over the sparse matrix: about two minutes at a million users and 27k
movies (the prototype's measurement, docs/MODELS.md), memory the matrix plus ``V``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from training.factors import FactorModel
from training.foldin import FoldIn, fitted
from training.interactions import Interactions
from training.weighting import HistoryModel, rating_top


class PureSVD(HistoryModel):
    name = "puresvd"
    settings_prefix = "puresvd"
    knobs: ClassVar[dict[str, str]] = {
        "factors": "puresvd_factors",
        "pop_norm": "puresvd_pop_norm",
    }

    def __init__(
        self,
        *,
        factors: int = 50,
        pop_norm: float = 0.0,
        **history: Any,
    ) -> None:
        """``history``: the weighting's ``value``, ``recency``, ``tau``, ``floor`` and the
        ``seed`` (``training.weighting.HistoryModel``)."""
        super().__init__(**history)
        self.factors = factors
        self.pop_norm = pop_norm

    def fit(self, data: Interactions) -> FactorModel:
        from scipy.sparse.linalg import svds

        if self.factors < 1:
            raise ValueError(f"factors must be >= 1, not {self.factors}")
        scale = sparse.diags(np.maximum(data.popularity(), 1).astype(np.float64) ** -self.pop_norm)
        matrix = sparse.csr_matrix(data.seen, dtype=np.float64) @ scale
        smaller = min(matrix.shape)
        if smaller < 2:
            raise ValueError("PureSVD needs at least two users and two movies")
        rank = min(self.factors, smaller - 1)  # ARPACK finds fewer than min(shape) values
        start = np.random.default_rng(self.seed).standard_normal(smaller)
        _, _, vt = svds(matrix, k=rank, v0=start, random_state=self.seed)
        fold = FoldIn(
            "projection",
            self.weighting,
            rating_top(data),
            {"column_scale": scale.diagonal(), "projection": np.ascontiguousarray(vt.T)},
        )
        # Users with no movie get no factors: popularity, as precompute gives.
        return fitted(fold, algorithm=self.name, data=data, item_factors=vt.T)
