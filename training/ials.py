"""iALS (Hu, Koren and Volinsky, 2008): implicit-feedback matrix factorisation by alternating
least squares, through the ``implicit`` library (0.7.3, its CPU solver).

Every (user, movie) pair counts, seen or not: a seen movie has preference 1 with confidence
``1 + alpha * x``, every other preference 0 with confidence 1, and user and movie factors
minimise the confidence-weighted squared error plus ``regularization`` times their squared
norms. The movie factors are learnt from the plain binary history (``implicit`` is given
the confidences ``1 + alpha`` and its own ``alpha`` of 1, so that its solver uses Hu et al.'s
confidence exactly). Each user's factors are then solved afresh against the fixed movie
factors from their weighted history (``training.weighting``; the default weights the
latest session: recency ``time`` with tau ~12 minutes), the same least-squares step with
confidence ``1 + alpha * x_ui``: folding in, which also gives every user factors consistent
with the final movie factors. The artifact is a ``FactorModel`` (no movie bias).

On MovieLens-100K it trails EASE, the top-N SVD and the Mult-DAE (docs/MODELS.md); it is
offered for comparison, not among the DAG's default candidates.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from training.factors import FactorModel
from training.foldin import FoldIn, fitted
from training.interactions import Interactions
from training.weighting import HistoryModel, rating_top

FOLD_IN_BLOCK = 2**24  # entries of the per-movie outer products summed at once (128 MiB)


class IALS(HistoryModel):
    name = "ials"
    settings_prefix = "ials"
    knobs: ClassVar[dict[str, str]] = {
        "factors": "ials_factors",
        "regularization": "ials_regularization",
        "alpha": "ials_alpha",
        "iterations": "ials_iterations",
    }

    def __init__(
        self,
        *,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        **history: Any,
    ) -> None:
        """``history``: the weighting's ``value``, ``recency``, ``tau``, ``floor`` and the
        ``seed`` (``training.weighting.HistoryModel``)."""
        super().__init__(**history)
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations

    def fit(self, data: Interactions) -> FactorModel:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        confidence = sparse.csr_matrix(data.seen, dtype=np.float32)
        confidence.data[:] = 1.0 + self.alpha
        # implicit's solver runs one OpenMP thread per core; BLAS threads would fight it.
        with threadpool_limits(limits=1, user_api="blas"):
            als = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,
                iterations=self.iterations,
                calculate_training_loss=False,
                random_state=self.seed,
            )
            als.fit(confidence, show_progress=False)
        fold = FoldIn(
            "ials",
            self.weighting,
            rating_top(data),
            numbers={"regularization": self.regularization, "alpha": self.alpha},
        )
        # Users with no movie get no factors: popularity, as precompute gives.
        return fitted(fold, algorithm=self.name, data=data, item_factors=als.item_factors)


def fold_in(
    item_factors: np.ndarray, history: sparse.csr_matrix, regularization: float, alpha: float
) -> np.ndarray:
    """Each user's least-squares factors against fixed movie factors Q, with confidence
    ``c = 1 + alpha * x`` on the movies of their history: ``(Q^T Q + Q_u^T (C_u - I) Q_u +
    regularization I)^-1 Q_u^T c_u``; users with an empty history get zeros. Vectorised:
    users in blocks, each block's systems summed by ``reduceat`` and solved at once."""
    q = item_factors.astype(np.float64)
    d = q.shape[1]
    base = q.T @ q + regularization * np.eye(d)
    out = np.zeros((history.shape[0], d), dtype=np.float32)
    indptr = history.indptr
    per_block = max(1, FOLD_IN_BLOCK // (d * d))
    lo = 0
    while lo < history.shape[0]:
        # Rows lo..hi hold at most per_block entries (or one row, however long).
        hi = max(lo + 1, int(np.searchsorted(indptr, indptr[lo] + per_block, side="right")) - 1)
        hi = min(hi, history.shape[0])
        lengths = np.diff(indptr[lo : hi + 1])
        some = np.flatnonzero(lengths > 0)
        if len(some):
            start, stop = indptr[lo], indptr[hi]
            movies = q[history.indices[start:stop]]
            confidence = 1.0 + alpha * history.data[start:stop].astype(np.float64)
            starts = (indptr[lo:hi] - start)[some]
            weighted = movies * (confidence - 1.0)[:, None]
            systems = base + np.add.reduceat(weighted[:, :, None] * movies[:, None, :], starts)
            targets = np.add.reduceat(movies * confidence[:, None], starts)
            out[lo + some] = np.linalg.solve(systems, targets[:, :, None])[:, :, 0]
        lo = hi
    return out
