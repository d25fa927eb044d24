"""Offline metrics of top-k lists against held-out movies, and of predicted ratings.

Definitions (k is the list length; ``rel`` the user's held-out movies; ``hit_i`` whether the
i-th recommended movie is one of them; every figure is a mean over the evaluated users):

- precision@k = hits / k
- recall@k    = hits / min(k, |rel|)   (Liang et al. 2018: a perfect list scores 1 even
  when a user has more than k held-out movies)
- ndcg@k      = sum_i hit_i / log2(i + 1) over the ideal DCG of min(k, |rel|) hits
- map@k       = sum_i precision@i * hit_i / min(k, |rel|)
- hit@k       = 1 if any hit
- coverage    = share of the catalogue that appears in at least one list
- diversity   = intra-list diversity: 1 - mean cosine similarity of the audiences (training
  users) of every pair of movies in a list, over a seeded sample of lists. 0: a list of
  movies watched by exactly the same people; 1: movies with no audience in common.
- rmse, mae   of predicted against held-out ratings.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

RANKING_METRICS = ("precision", "recall", "ndcg", "map", "hit")
DIVERSITY_SAMPLE = 1000  # lists whose pairwise similarities are computed


def discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


class RankingMetrics:
    """Accumulates per-user ranking metrics block by block (scores never exist for all
    users at once), plus what coverage and diversity need."""

    def __init__(
        self, k: int, n_items: int, seed: int = 0, diversity_sample: int = DIVERSITY_SAMPLE
    ):
        self.k = k
        self.n_items = n_items
        self.sums = dict.fromkeys(RANKING_METRICS, 0.0)
        self.users = 0
        self.recommended = np.zeros(n_items, dtype=bool)
        self.lists: list[np.ndarray] = []
        self._rng = np.random.default_rng(seed)
        self._sample = diversity_sample

    def add(self, top: np.ndarray, held_out: sparse.csr_matrix) -> None:
        """``top``: [users, k] item indices best first (-1 pads a short list); ``held_out``:
        the same users' held-out movies, each row non-empty."""
        n, k = top.shape
        if k != self.k:
            raise ValueError(f"lists of {k}, expected {self.k}")
        relevant = np.diff(held_out.indptr)
        if (relevant == 0).any():
            raise ValueError("every evaluated user needs at least one held-out movie")
        dense = held_out.toarray().astype(bool)
        valid = top >= 0
        hits = dense[np.arange(n)[:, None], np.where(valid, top, 0)] & valid
        ideal = np.minimum(relevant, k)
        disc = discounts(k)
        n_hits = hits.sum(axis=1)
        precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
        self.sums["precision"] += float((n_hits / k).sum())
        self.sums["recall"] += float((n_hits / ideal).sum())
        self.sums["ndcg"] += float(((hits @ disc) / np.cumsum(disc)[ideal - 1]).sum())
        self.sums["map"] += float(((precision_at * hits).sum(axis=1) / ideal).sum())
        self.sums["hit"] += float(hits.any(axis=1).sum())
        self.users += n
        self.recommended[top[valid]] = True
        self._reservoir(top)

    def _reservoir(self, top: np.ndarray) -> None:
        """Keep a uniform sample of lists for diversity (reservoir sampling, seeded)."""
        start = self.users - len(top)
        for offset, row in enumerate(top):
            index = start + offset
            if len(self.lists) < self._sample:
                self.lists.append(row)
            else:
                slot = int(self._rng.integers(0, index + 1))
                if slot < self._sample:
                    self.lists[slot] = row

    def result(self, train_seen: sparse.csr_matrix) -> dict[str, float]:
        """Means over every user added, with coverage and diversity; keys name k."""
        if self.users == 0:
            raise ValueError("no user was evaluated")
        out = {f"{name}@{self.k}": self.sums[name] / self.users for name in RANKING_METRICS}
        out["coverage"] = float(self.recommended.mean())
        out["diversity"] = intra_list_diversity(self.lists, train_seen)
        return out


def intra_list_diversity(lists: list[np.ndarray], train_seen: sparse.csr_matrix) -> float:
    """Mean over lists of 1 - mean pairwise cosine similarity of the movies' audiences."""
    audiences = sparse.csc_matrix(train_seen, dtype=np.float32)
    norms = np.sqrt(np.asarray(audiences.multiply(audiences).sum(axis=0)).ravel())
    audiences = audiences @ sparse.diags(
        np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    )
    audiences = audiences.tocsc()
    values = []
    for row in lists:
        items = row[row >= 0]
        if len(items) < 2:
            continue
        gram = (audiences[:, items].T @ audiences[:, items]).toarray()
        pairs = len(items) * (len(items) - 1)
        values.append(1.0 - (gram.sum() - np.trace(gram)) / pairs)
    return float(np.mean(values)) if values else float("nan")


def rating_errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """RMSE and MAE of predicted ratings."""
    if len(actual) == 0:
        return {"rmse": float("nan"), "mae": float("nan")}
    error = np.asarray(predicted, dtype=float) - np.asarray(actual, dtype=float)
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}
