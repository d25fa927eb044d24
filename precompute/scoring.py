"""Every user's k movies, block by block: the model's block scorer, seen movies removed,
exact top-k (``topn.top_k``), business rules (``rules``), and a top-up so every list is full.

Each of ``threads`` threads takes one block of ``block_size`` users through all of it
(scores, exclusion, selection) while the others do the same with the next blocks; numpy and
BLAS release the GIL for the heavy parts. A block is selected in one ``top_k`` call: cutting
it into cache-sized chunks of 64 rows measured no faster for precompute (ratio 0.705 against
0.692 at 27k movies, within the noise) and cost the refresher, whose small batches pay
``top_k``'s fixed cost per call, a fifth of its rate (ratio 0.44 against 0.53-0.60).

One thread per block, rather than every thread on every stage, because the stages that are
single-threaded inside numpy (the scorer's allocation and bias pass, exclusion, selection)
then never leave a core idle, and a block's scores are selected by the core that just wrote
them. For the same
reason BLAS gets ``cores / threads`` threads while ranking (threadpoolctl): with one BLAS
thread per worker the products run side by side instead of two multi-threaded products
fighting over the cores (measured: 30% more users/s on 2 cores). At most ``threads`` blocks
are in flight, so memory is ``threads x block_size x movies`` floats (plus what the model's
scorer allocates), whatever the number of users.

With ``device`` a torch device (PRECOMPUTE_DEVICE; ``auto`` picks CUDA when there is one),
a block's scores, exclusion and selection are one pass on that device instead
(``devicescoring``): the same lists, computed where the products are fast.

Users the model has no factors for (say, they only watched) are ranked by popularity, their
own history still excluded. They get the score ``-rank`` in the popularity order rather than
the popularity itself: the same ranking (ties already broken by item index) with no ties,
which keeps them on ``top_k``'s fast path.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache, cached_property
from itertools import islice

import numpy as np
from threadpoolctl import ThreadpoolController

from contracts.response import LIST_LENGTH
from precompute.devicescoring import NUMPY, DeviceScorer
from precompute.rules import Rule, apply_rules
from training.factors import FactorModel
from training.interactions import Interactions
from training.topn import exclude_seen, top_k


@cache
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, found once: finding them costs ~10 ms, too much to pay
    per ``blocks()`` call when the refresher ranks a few users at a time."""
    return ThreadpoolController()


def popular_order(data: Interactions) -> np.ndarray:
    """Item indices, most popular first (ties: lower index first)."""
    popularity = data.popularity()
    return np.lexsort((np.arange(data.n_items), -popularity))


@dataclass(frozen=True)
class Ranker:
    """Ranks users of ``data`` with ``model``; ``rules`` (if any) pick k from ``pool``."""

    model: FactorModel
    data: Interactions
    k: int = LIST_LENGTH
    block_size: int = 256
    threads: int = 1
    rules: Sequence[Rule] = ()
    pool: int = 3 * LIST_LENGTH
    device: str = NUMPY  # or a torch device, "cpu" or "cuda" (devicescoring.resolve)
    _buffers: threading.local = field(
        default_factory=threading.local, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not np.array_equal(self.model.item_ids, self.data.item_ids):
            raise ValueError(
                "model and snapshot disagree on the catalogue: use its training snapshot"
            )

    def blocks(self, users: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row indices into ``data``, their lists as item indices [n, k]) per block.

        ``users`` (row indices into ``data``, default all) is typically one shard.
        """
        users = np.arange(self.data.n_users) if users is None else np.asarray(users)
        fill, unknown_scores = self._popular
        model_rows = self.model.user_rows(self.data.user_ids[users])
        width = max(self.pool, self.k) if self.rules else self.k

        def rank(start: int) -> np.ndarray:
            """One block, start to finish, on one thread: its scores stay in this core's
            cache from the product to the selection, and no step waits for another."""
            block = users[start : start + self.block_size]
            if self.device != NUMPY:
                rows = model_rows[start : start + self.block_size]
                return self._device_scorer.rank(rows, self.data.seen[block], unknown_scores, width)
            scores = self._scores(model_rows[start : start + self.block_size], unknown_scores)
            exclude_seen(scores, self.data.seen[block])
            return top_k(scores, width)

        starts = iter(range(0, len(users), self.block_size))
        blas_threads = max(1, (os.cpu_count() or 1) // self.threads)
        with (
            _blas().limit(limits=blas_threads, user_api="blas"),
            ThreadPoolExecutor(self.threads) as pool,
        ):
            # At most `threads` blocks in flight: memory is threads x block, not users.
            running = deque((s, pool.submit(rank, s)) for s in islice(starts, self.threads))
            while running:
                start, future = running.popleft()
                ranked = future.result()
                running.extend((s, pool.submit(rank, s)) for s in islice(starts, 1))
                block = users[start : start + self.block_size]
                yield block, _top_up(apply_rules(ranked, self.rules, self.k), fill)

    @cached_property
    def _device_scorer(self) -> DeviceScorer:
        return DeviceScorer(self.model, self.device)

    @cached_property
    def _popular(self) -> tuple[np.ndarray, np.ndarray]:
        """The popularity order, and as scores (``-rank``) for users the model never saw."""
        fill = popular_order(self.data)
        scores = np.empty(self.data.n_items, dtype=np.float32)
        scores[fill] = -np.arange(self.data.n_items, dtype=np.float32)
        return fill, scores

    def _scores(self, rows: np.ndarray, unknown_scores: np.ndarray) -> np.ndarray:
        """The block's scores, in this thread's reused buffer (consumed before its next block)."""
        buffer = getattr(self._buffers, "scores", None)
        if buffer is None or len(buffer) < len(rows):
            buffer = self._buffers.scores = np.empty(
                (max(len(rows), self.block_size), self.data.n_items), dtype=np.float32
            )
        scores = buffer[: len(rows)]
        known = rows >= 0
        if known.all():
            return self.model.score_block(rows, out=scores)
        if known.any():
            scores[known] = self.model.score_block(rows[known])
        scores[~known] = unknown_scores
        return scores


def cold_start(
    data: Interactions, rules: Sequence[Rule] = (), k: int = LIST_LENGTH, pool: int = 60
) -> np.ndarray:
    """The list for users nobody has seen: the most popular movies, rules applied."""
    order = popular_order(data)
    ranked = order[: max(pool, k) if rules else k][None, :].astype(np.int64)
    return _top_up(apply_rules(ranked, rules, k), order)[0]


def _top_up(lists: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """A list short of k (the user has seen nearly everything, or the rules ran out of
    candidates) is completed with the most popular movies not already in it, so every user
    still gets k unique movies as the contract says."""
    short = np.flatnonzero((lists < 0).any(axis=1))
    for row in short:
        chosen = lists[row][lists[row] >= 0]
        extra = fill[~np.isin(fill, chosen)][: lists.shape[1] - len(chosen)]
        lists[row, : len(chosen) + len(extra)] = np.concatenate([chosen, extra])
    return lists
