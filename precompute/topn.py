"""Exact top-k selection over a block of score rows, excluding what each user has seen."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def exclude_seen(scores: np.ndarray, seen: sparse.csr_matrix) -> None:
    """Set the scores of seen items to -inf, in place; ``seen`` rows align with ``scores``."""
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    scores[rows, seen.indices] = -np.inf


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k best scores, best first; ties go to the lower item index.

    Excluded entries (-inf) are never returned; a row with fewer than k finite scores is
    padded with -1.
    """
    n_rows, n_items = scores.shape
    k_eff = min(k, n_items)
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    vals = np.take_along_axis(scores, part, axis=1)
    kth = vals.min(axis=1, keepdims=True)
    # argpartition is exact unless values tied with the k-th best straddle the cut; only
    # those rows (rare with float scores) take the slow, explicit path.
    ambiguous = (scores >= kth).sum(axis=1) > k_eff
    ambiguous |= ~np.isfinite(kth[:, 0])
    for r in np.flatnonzero(ambiguous):
        row = scores[r]
        above = np.flatnonzero(row > kth[r])
        ties = np.flatnonzero(row == kth[r])[: k_eff - len(above)]
        part[r] = np.concatenate([above, ties])
        vals[r] = row[part[r]]
    order = np.lexsort((part, -vals), axis=1)
    part = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    out = np.full((n_rows, k), -1, dtype=np.int64)
    out[:, :k_eff] = np.where(np.isfinite(vals), part, -1)
    return out
