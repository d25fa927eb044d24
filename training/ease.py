"""EASE (Steck, 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"), served as factors.

EASE learns one movies x movies matrix ``B`` in closed form from the users x movies matrix
``X`` of what users saw: ``P = (X^T X + lambda I)^-1``, ``B = I - P diagMat(1 / diag(P))``
(``B`` has a zero diagonal: a movie may not explain itself). A user's scores are
``x_u B diag(popularity^-e)``: the last factor (``pop_exponent``) tempers popular movies,
which the held-out movies are less often than a plain EASE expects. ``x_u`` is the user's
history weighted by recency and rating (``training.weighting``); ``B`` is learnt from the
plain binary ``X``. On MovieLens-100K the recency-weighted scoring is worth 0.21 -> 0.27
NDCG@20 (docs/MODELS.md).

The artifact is a ``FactorModel`` like every other, so precompute, evaluation and the gate
need nothing new: ``B`` is factored by a seeded randomized SVD, ``B ~ U S V^T`` at rank
``rank`` (EASE_RANK, 128), and the user factors are ``X_w U S``, the movie factors ``V``.
``U S`` is saved as the artifact's fold-in projection (``training.foldin``): a history the
model never saw becomes factors the same way, with no refit.
Scoring a million users is then a 128-wide product (~40 s at 27k movies) instead of a
sparse-times-dense one with the full matrix (~14 min). Measured on MovieLens-100K, rank 128
scores as the full matrix does (0.2666 NDCG@20 both). When ``rank`` is at least the number of
movies the artifact is exact: user factors ``X_w``, movie factors ``B^T``.

Cost at the service's scale (27k movies, 1M users; docs/MODELS.md): the Gram matrix ~15 min
(sparse products over blocks of users, summed into one dense float32 matrix), the inverse
~3 min (float32 Cholesky, in place, through torch's LAPACK), the rank-128 SVD ~30 s; peak
memory one 27k x 27k float32 matrix (2.7 GiB) plus the data: 3.65 GiB measured.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from training.factors import FactorModel
from training.foldin import FoldIn, fitted
from training.interactions import Interactions
from training.weighting import HistoryModel, rating_top

# Users per sparse product when summing the Gram matrix: as many as produce at most this many
# (movie, movie) pairs (the sum of their squared history lengths), so that one block's
# product and its flat indices stay under ~1 GiB (16 bytes a pair) whatever the users.
GRAM_BLOCK_PAIRS = 50_000_000
SVD_OVERSAMPLE, SVD_POWER_ITERATIONS = 20, 6


class EASE(HistoryModel):
    name = "ease"
    settings_prefix = "ease"
    knobs: ClassVar[dict[str, str]] = {
        "lam": "ease_lambda",
        "pop_exponent": "ease_pop_exponent",
        "rank": "ease_rank",
    }

    def __init__(
        self,
        *,
        lam: float = 500.0,
        pop_exponent: float = 0.0,
        rank: int = 128,
        **history: Any,
    ) -> None:
        """``history``: the weighting's ``value``, ``recency``, ``tau``, ``floor`` and the
        ``seed`` (``training.weighting.HistoryModel``)."""
        super().__init__(**history)
        self.lam = lam
        self.pop_exponent = pop_exponent
        self.rank = rank
        # Seconds per stage of the last fit (gram, inverse, svd, users): bench.train reports them.
        self.stage_seconds: dict[str, float] = {}

    def item_matrix(self, data: Interactions) -> np.ndarray:
        """``B diag(popularity^-e)``, float32 [movies, movies]."""
        if not self.lam > 0:
            raise ValueError(f"lam must be > 0, not {self.lam}")
        seen = sparse.csr_matrix(data.seen, dtype=np.float32)
        started = time.perf_counter()
        b = gram(seen)
        self.stage_seconds["gram"] = time.perf_counter() - started
        b[np.diag_indices_from(b)] += np.float32(self.lam)
        started = time.perf_counter()
        invert_spd_in_place(b)
        self.stage_seconds["inverse"] = time.perf_counter() - started
        diagonal = np.diag(b).copy()
        b /= -diagonal[None, :]
        b[np.diag_indices_from(b)] = 0.0
        if self.pop_exponent:
            popularity = np.maximum(data.popularity(), 1).astype(np.float64)
            b *= (popularity**-self.pop_exponent).astype(np.float32)[None, :]
        return b

    def fit(self, data: Interactions) -> FactorModel:
        b = self.item_matrix(data)
        started = time.perf_counter()
        if self.rank >= data.n_items:
            fold = self.fold(data)  # the identity: the weighted history is the factors
            item_factors = np.ascontiguousarray(b.T)
        else:
            u, s, vt = randomized_svd(b, self.rank, seed=self.seed)
            self.stage_seconds["svd"] = time.perf_counter() - started
            started = time.perf_counter()
            fold = self.fold(data, projection=u * s)
            item_factors = np.ascontiguousarray(vt.T)
        # Users with no movie get no factors: popularity, as precompute gives.
        model = fitted(fold, algorithm=self.name, data=data, item_factors=item_factors)
        self.stage_seconds["users"] = time.perf_counter() - started
        return model

    def fold(self, data: Interactions, projection: np.ndarray | None = None) -> FoldIn:
        """A user's factors are ``x_u U S`` (``x_u`` itself when exact)."""
        arrays = {} if projection is None else {"projection": projection.astype(np.float32)}
        return FoldIn("projection", self.weighting, rating_top(data), arrays)


def gram(x: sparse.csr_matrix, pairs: int = GRAM_BLOCK_PAIRS) -> np.ndarray:
    """``X^T X`` as a dense float32 matrix, summed over blocks of users: each block's sparse
    product is bounded (``pairs``), and the dense result is the only movies x movies matrix
    there is."""
    n = x.shape[1]
    out = np.zeros((n, n), dtype=np.float32)
    flat = out.reshape(-1)
    cost = np.cumsum(np.diff(x.indptr).astype(np.int64) ** 2)
    lo = 0
    while lo < x.shape[0]:
        done = cost[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(cost, done + pairs, side="right")))
        rows = x[lo:hi]
        part = sparse.csr_matrix(rows.T @ rows)
        part.sum_duplicates()  # a no-op on the product's canonical form, but cheap to be sure
        index = np.repeat(np.arange(0, n * n, n, dtype=np.int64), np.diff(part.indptr))
        index += part.indices
        flat[index] += part.data
        lo = hi
    return out


def invert_spd_in_place(a: np.ndarray) -> None:
    """Overwrite the symmetric positive definite float32 ``a`` with its inverse: Cholesky
    factorisation, then the inverse from the factor, both written into ``a`` itself (no
    second movies x movies matrix).

    Through torch's LAPACK (MKL), not numpy's or scipy's: their OpenBLAS build crashes
    (segfault) on matrices past 2^31 bytes, which a 27k-movie catalogue is (2.7 GiB)."""
    import torch

    if a.dtype != np.float32 or not a.flags.c_contiguous:
        raise ValueError("expected a C-contiguous float32 matrix")
    # a's memory, seen column-major (LAPACK's layout; the same matrix, as a is symmetric):
    # given a row-major matrix, torch would factor a copy of it.
    matrix = torch.from_numpy(a).T
    info = torch.empty((), dtype=torch.int32)
    torch.linalg.cholesky_ex(matrix, out=(matrix, info))
    if int(info) != 0:
        raise np.linalg.LinAlgError(f"not positive definite (Cholesky info {int(info)})")
    torch.cholesky_inverse(matrix, out=matrix)


def randomized_svd(
    a: np.ndarray,
    rank: int,
    *,
    seed: int,
    oversample: int = SVD_OVERSAMPLE,
    power_iterations: int = SVD_POWER_ITERATIONS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-``rank`` SVD of a dense matrix (Halko, Martinsson and Tropp, 2011), seeded:
    ``a ~ u @ diag(s) @ vt``, in ``a``'s dtype. The products with ``a`` go through torch
    (numpy's OpenBLAS crashes on matrices past 2^31 bytes, see ``invert_spd_in_place``);
    the factorisations of the thin matrices run in numpy on one thread (threaded, they were
    30x slower on a busy 2-core machine, and they are a small part of the work)."""
    import torch
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController()
    matrix = torch.from_numpy(np.ascontiguousarray(a))

    def times(m: np.ndarray, *, transposed: bool = False) -> np.ndarray:
        """``a @ m`` (or ``a.T @ m``) for a thin ``m``."""
        left = matrix.T if transposed else matrix
        return (left @ torch.from_numpy(np.ascontiguousarray(m))).numpy()

    def orthonormal(m: np.ndarray) -> np.ndarray:
        with blas.limit(limits=1, user_api="blas"):
            return np.linalg.qr(m)[0]

    rng = np.random.default_rng(seed)
    width = min(rank + oversample, *a.shape)
    q = orthonormal(times(rng.standard_normal((a.shape[1], width)).astype(a.dtype)))
    for _ in range(power_iterations):
        q = orthonormal(times(orthonormal(times(q, transposed=True))))
    small = times(q, transposed=True).T  # q.T @ a
    with blas.limit(limits=1, user_api="blas"):
        u_small, s, vt = np.linalg.svd(small, full_matrices=False)
    return (q @ u_small)[:, :rank], s[:rank], vt[:rank]
