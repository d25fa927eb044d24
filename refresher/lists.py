"""Users' lists from their histories, exactly as precompute makes them: each history folded
into the version's model (``training.foldin.fold_in_users``, the function that made the
published users' factors at fit time), then precompute's own ranking and bodies
(``precompute.scoring.Ranker``, with precompute's PRECOMPUTE_BLOCK_SIZE and
PRECOMPUTE_THREADS: scores, seen movies removed, top-k, rules, top-up; and
``precompute.bodies.Catalogue``, made once per version, for the bodies).

Who gets a list: a user the snapshot knew, always (they had a published list); a user it
did not, once they have ``min_history`` movies in the model's catalogue (REFRESH_MIN_HISTORY;
until then the service answers the cold-start list, which is the popularity order those
users would get anyway; docs/MODELS.md has the measurement behind the default, 3). A user
with no movie of the catalogue is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contracts.response import LIST_LENGTH
from precompute.bodies import Catalogue
from precompute.rules import Rule
from precompute.scoring import Ranker
from refresher.history import Base, OnBase
from training.foldin import fold_in_users


@dataclass(frozen=True)
class Lists:
    user_ids: list[int]
    bodies: list[bytes]
    known: int  # of them, users the snapshot knew
    skipped: int  # users left alone: too short a history, or none in the catalogue
    fold_seconds: float  # folding in and ranking


def lists_for(
    base: Base,
    catalogue: Catalogue,
    histories: OnBase,
    *,
    min_history: int,
    rules: Sequence[Rule] = (),
    pool: int = 60,
    block_size: int = 256,
    threads: int = 1,
) -> Lists:
    started = time.perf_counter()
    lengths = np.diff(histories.seen.indptr)
    known = base.knows(histories.user_ids)
    chosen = np.flatnonzero((lengths > 0) & (known | (lengths >= min_history)))
    model = fold_in_users(base.model, histories)
    user_ids: list[int] = []
    bodies: list[bytes] = []
    if len(chosen):
        ranker = Ranker(
            model,
            histories,
            k=LIST_LENGTH,
            block_size=block_size,
            threads=threads,
            rules=rules,
            pool=pool,
        )
        for rows, ranked in ranker.blocks(chosen):
            user_ids += histories.user_ids[rows].tolist()
            bodies += catalogue.bodies(ranked)
    return Lists(
        user_ids,
        bodies,
        int(known[chosen].sum()),
        int(len(lengths) - len(chosen)),
        time.perf_counter() - started,
    )
