"""Response bodies, built here once per user so the service sends bytes it never looks at.

The format is ``contracts.response``'s: each catalogue ID is checked against it once
(``format_body`` of the ID alone), after which a body is a join of pre-encoded IDs. Lists
come from ``scoring.Ranker`` (unique indices by construction); ``Catalogue.bodies`` still
checks uniqueness per block, vectorised, because a duplicate would break the contract.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from contracts.response import LIST_LENGTH, SEPARATOR, BadListError, format_body
from precompute.rules import Rule
from precompute.scoring import Ranker, cold_start
from training.factors import FactorModel
from training.interactions import Interactions


class Catalogue:
    """Movie IDs by item index, as validated UTF-8 bytes."""

    def __init__(self, item_ids: np.ndarray) -> None:
        self.ids = [format_body([str(movie_id)]).encode() for movie_id in item_ids]
        self._array = np.array([*self.ids, b""], dtype=object)  # index -1: nothing
        self._separator = SEPARATOR.encode()

    def body(self, items: Sequence[int]) -> bytes:
        return self._separator.join([self.ids[i] for i in items if i >= 0])

    def bodies(self, lists: np.ndarray) -> list[bytes]:
        """One body per row of item indices (-1 entries left out)."""
        if lists.shape[1] > LIST_LENGTH:
            raise BadListError(f"{lists.shape[1]} movies, at most {LIST_LENGTH}")
        ordered = np.sort(lists, axis=1)
        if ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any():
            raise BadListError("duplicate movie IDs in a list")
        sep = self._separator
        rows = self._array[lists].tolist()  # object fancy-indexing: no Python int per movie
        if (lists >= 0).all():
            return [sep.join(row) for row in rows]
        return [sep.join([movie for movie in row if movie]) for row in rows]


def cold_start_body(data: Interactions, rules: Sequence[Rule] = (), pool: int = 60) -> bytes:
    """The list for users the model has never seen: the most popular movies."""
    return Catalogue(data.item_ids).body(cold_start(data, rules, pool=pool).tolist())


def body_blocks(
    model: FactorModel,
    data: Interactions,
    *,
    users: np.ndarray | None = None,
    k: int = LIST_LENGTH,
    block_size: int = 256,
    threads: int = 1,
    rules: Sequence[Rule] = (),
    pool: int = 60,
    device: str = "numpy",
) -> Iterator[tuple[list[int], list[bytes]]]:
    """(user IDs, their bodies) per block, for ``users`` (row indices of ``data``; default
    every user; ``device`` as for ``Ranker``). Blocks rather than pairs: publishing
    handles a batch at a time anyway."""
    catalogue = Catalogue(data.item_ids)
    ranker = Ranker(model, data, k, block_size, threads, rules, pool, device)
    for rows, lists in ranker.blocks(users):
        yield data.user_ids[rows].tolist(), catalogue.bodies(lists)


def user_bodies(model: FactorModel, data: Interactions, **options) -> Iterator[tuple[int, bytes]]:
    """(user_id, body) pairs; ``options`` as for ``body_blocks``."""
    for user_ids, bodies in body_blocks(model, data, **options):
        yield from zip(user_ids, bodies, strict=True)
