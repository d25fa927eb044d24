"""A snapshot as index-aligned arrays: what every model trains on and precompute excludes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from ingest.snapshot import Snapshot


@dataclass(frozen=True)
class Interactions:
    """Users and movies of a snapshot, indexed 0..n-1 in sorted ID order.

    ``ratings`` has columns user_idx, item_idx, rating; ``seen`` is a users x items CSR
    matrix marking every movie a user rated or watched (the ones never to recommend).
    """

    user_ids: np.ndarray  # int64, sorted
    item_ids: np.ndarray  # str (object), sorted
    ratings: pd.DataFrame
    seen: sparse.csr_matrix

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> Interactions:
        return cls.from_frames(snapshot.ratings, snapshot.watches)

    @classmethod
    def from_frames(
        cls,
        ratings: pd.DataFrame,
        watches: pd.DataFrame,
        *,
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
    ) -> Interactions:
        """Index a snapshot's two tables (columns user_id, movie_id[, rating]).

        ``user_ids``/``item_ids`` fix the index instead of deriving it from the rows: the
        evaluation trains on part of the data but must keep the whole catalogue's index, so
        that every model ranks the same movies. They must be sorted and cover every row.
        """
        if user_ids is None:
            user_ids = np.union1d(ratings["user_id"].to_numpy(), watches["user_id"].to_numpy())
        if item_ids is None:
            item_ids = np.union1d(
                ratings["movie_id"].to_numpy(dtype=object),
                watches["movie_id"].to_numpy(dtype=object),
            ).astype(object)
        pairs = pd.concat(
            [ratings[["user_id", "movie_id"]], watches[["user_id", "movie_id"]]],
            ignore_index=True,
        ).drop_duplicates()
        rows = np.searchsorted(user_ids, pairs["user_id"].to_numpy())
        cols = np.searchsorted(item_ids, pairs["movie_id"].to_numpy(dtype=object))
        seen = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.int8), (rows, cols)),
            shape=(len(user_ids), len(item_ids)),
        )
        rated = pd.DataFrame(
            {
                "user_idx": np.searchsorted(user_ids, ratings["user_id"].to_numpy()),
                "item_idx": np.searchsorted(item_ids, ratings["movie_id"].to_numpy(dtype=object)),
                "rating": ratings["rating"].to_numpy(dtype=np.float32),
            }
        )
        return cls(user_ids, item_ids, rated, seen)

    def popularity(self) -> np.ndarray:
        """Distinct users who rated or watched each movie."""
        return np.asarray(self.seen.sum(axis=0)).ravel()
