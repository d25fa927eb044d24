"""Every user's response body, computed block by block from a model and a snapshot."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from precompute.topn import exclude_seen, top_k
from service.response import LIST_LENGTH, format_body
from training.factors import FactorModel
from training.interactions import Interactions


def popular_order(data: Interactions) -> np.ndarray:
    """Item indices, most popular first (ties: lower index first)."""
    popularity = data.popularity()
    return np.lexsort((np.arange(data.n_items), -popularity))


def cold_start_body(data: Interactions, k: int = LIST_LENGTH) -> str:
    """The list for users the model has never seen: the most popular movies."""
    return format_body(data.item_ids[popular_order(data)[:k]])


def user_bodies(
    model: FactorModel, data: Interactions, *, k: int = LIST_LENGTH, block_size: int = 2048
) -> Iterator[tuple[int, str]]:
    """(user_id, body) for every user of the snapshot, best first, unseen movies only.

    Users the model has no factors for (say, they only watched) are ranked by popularity,
    with their own history still excluded. Memory is bounded by ``block_size`` rows.
    """
    if not np.array_equal(model.item_ids, data.item_ids):
        raise ValueError("model and snapshot disagree on the catalogue: use its training snapshot")
    rows = model.user_rows(data.user_ids)
    popular = np.log1p(data.popularity()).astype(np.float32)
    fill = popular_order(data)
    for start in range(0, data.n_users, block_size):
        stop = min(start + block_size, data.n_users)
        block_rows = rows[start:stop]
        known = block_rows >= 0
        scores = np.empty((stop - start, data.n_items), dtype=np.float32)
        if known.any():
            scores[known] = model.score_block(block_rows[known])
        scores[~known] = popular
        exclude_seen(scores, data.seen[start:stop])
        best = top_k(scores, k)
        for offset, picks in enumerate(best):
            yield int(data.user_ids[start + offset]), _body(picks, fill, data.item_ids, k)


def _body(picks: np.ndarray, fill: np.ndarray, item_ids: np.ndarray, k: int) -> str:
    chosen = picks[picks >= 0]
    if len(chosen) < k:
        # A user who has seen nearly everything still gets k unique movies: top up with
        # the most popular ones not already in the list (seen or not).
        extra = fill[~np.isin(fill, chosen)][: k - len(chosen)]
        chosen = np.concatenate([chosen, extra])
    return format_body(item_ids[chosen])
