"""Precompute's scoring pass in torch, for a GPU: score, exclude seen, top-k in one device pass.

``scoring.Ranker`` uses it when PRECOMPUTE_DEVICE resolves to a torch device (``auto``: CUDA
when torch sees one); the numpy path (``FactorModel.score_block``, ``topn.exclude_seen``,
``topn.top_k``) is unchanged and stays the default on machines without a GPU. The pass gives
the same lists as the numpy path, ties included: the ranking order is the same total order,
higher score first and ties to the lower movie index, made exact by selecting on one int64
key per entry (the float32 score in an order-preserving integer form in the high word, the
complement of the movie index in the low word, as ``topn._top_by_key`` does in numpy), so
``torch.topk`` has no ties to break its own way. Excluded entries (-inf) come back as -1, as
from ``top_k``. Only the block's user factors and seen pairs travel to the device; the item
factors are copied there once. Rules and the top-up stay on the host (``scoring``): they
work on the k-wide lists, not on the scores.

Anchor (the issue's, measured on an H100): 1M users x 27k movies x 64 factors, score + exclude
100 seen + top-20 in 0.45 s fp32. Not measured here: these machines have no GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from precompute.settings import DEVICES
from training.factors import FactorModel

if TYPE_CHECKING:
    import torch

NUMPY = "numpy"

_LOW32 = 0xFFFFFFFF
_SIGN = 0x80000000
_HALF = 1 << 31
_MINUS_INF_HIGH = 0x007FFFFF - _HALF  # the key's high word for a -inf score


def resolve(device: str) -> str:
    """``auto`` -> ``cuda`` when torch is installed and sees a GPU, else ``numpy``; any other
    name is returned as is (``cpu`` is torch on the CPU: the equality tests use it)."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return NUMPY
    return "cuda" if torch.cuda.is_available() else NUMPY


class DeviceScorer:
    """One model's items on one torch device; ``rank`` does a block of users."""

    def __init__(self, model: FactorModel, device: str) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        stacked = np.vstack([model.item_factors.T, model.item_bias[None, :]])
        self._items = torch.from_numpy(np.ascontiguousarray(stacked, np.float32)).to(self.device)
        self._user_factors = model.user_factors
        self._item_index = torch.arange(model.item_factors.shape[0], device=self.device)

    def rank(
        self, rows: np.ndarray, seen: sparse.csr_matrix, unknown_scores: np.ndarray, k: int
    ) -> np.ndarray:
        """Item indices of the k best unseen movies of each user at model ``rows`` (-1: a user
        the model never saw, scored ``unknown_scores``), best first: int64 [len(rows), k]."""
        torch = self._torch
        n_rows = len(rows)
        n_items = self._items.shape[1]
        users = np.zeros((n_rows, self._items.shape[0]), dtype=np.float32)
        known = rows >= 0
        users[known, :-1] = self._user_factors[rows[known]]
        users[known, -1] = 1.0
        scores = torch.from_numpy(users).to(self.device) @ self._items
        if not known.all():
            unknown = torch.from_numpy(np.flatnonzero(~known)).to(self.device)
            scores[unknown] = torch.from_numpy(unknown_scores).to(self.device)
        exclude(scores, seen)
        return top_k(scores, k, self._item_index[:n_items]).cpu().numpy()


def exclude(scores: torch.Tensor, seen: sparse.csr_matrix) -> None:
    """Set the scores of seen items to -inf, in place; ``seen`` rows align with ``scores``."""
    import torch

    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    device = scores.device
    scores[torch.from_numpy(rows).to(device), torch.from_numpy(seen.indices).to(device)] = float(
        "-inf"
    )


def top_k(scores: torch.Tensor, k: int, items: torch.Tensor | None = None) -> torch.Tensor:
    """Item indices of each row's k best float32 scores, best first, ties to the lower
    index, -1 past the finite ones: the order of ``topn.top_k``, on ``scores``' device."""
    import torch

    if torch.isnan(scores).any():
        raise ValueError("NaN scores: the model is broken, refusing to rank with it")
    n_rows, n_items = scores.shape
    if items is None:
        items = torch.arange(n_items, device=scores.device)
    bits = (scores + 0.0).view(torch.int32).to(torch.int64) & _LOW32  # -0.0 + 0.0 is +0.0
    bits = torch.where((bits & _SIGN) != 0, bits ^ _LOW32, bits | _SIGN)
    keys = ((bits - _HALF) << 32) | (_LOW32 - items)
    best = torch.topk(keys, min(k, n_items), dim=1, sorted=True).values
    picked = _LOW32 - (best & _LOW32)
    picked = torch.where((best >> 32) == _MINUS_INF_HIGH, -1, picked)
    if picked.shape[1] < k:
        pad = torch.full((n_rows, k - picked.shape[1]), -1, dtype=torch.int64, device=best.device)
        picked = torch.cat([picked, pad], dim=1)
    return picked
