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
    ``last_contact`` (what recency weighting needs, ``training.weighting``) has ``seen``'s
    pattern and shares its index arrays: each pair's latest contact, the later of its rating's
    time and its watch's last time (a history's watches carry only their first time, which
    is then used: a split never sees a rewatch after its cut), as Unix seconds in uint32
    (4 bytes a pair; 1970 to 2106). None when the frames had no times.
    """

    user_ids: np.ndarray  # int64, sorted
    item_ids: np.ndarray  # str (object), sorted
    ratings: pd.DataFrame
    seen: sparse.csr_matrix
    last_contact: sparse.csr_matrix | None = None  # uint32 Unix seconds, seen's pattern

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
        """Index a snapshot's two tables (columns user_id, movie_id[, rating][, times]).

        ``user_ids``/``item_ids`` fix the index instead of deriving it from the rows: the
        evaluation trains on part of the data but must keep the whole catalogue's index, so
        that every model ranks the same movies. They must be sorted and cover every row.
        Times: a rating's ``time``, a watch's ``last_time`` (else its ``first_time``); the
        latest of a pair's becomes its ``last_contact``.
        """
        if user_ids is None:
            user_ids = np.union1d(ratings["user_id"].to_numpy(), watches["user_id"].to_numpy())
        if item_ids is None:
            item_ids = np.union1d(
                ratings["movie_id"].to_numpy(dtype=object),
                watches["movie_id"].to_numpy(dtype=object),
            ).astype(object)

        def keys(frame: pd.DataFrame) -> np.ndarray:
            rows = np.searchsorted(user_ids, frame["user_id"].to_numpy()).astype(np.int64)
            return rows * len(item_ids) + np.searchsorted(
                item_ids, frame["movie_id"].to_numpy(dtype=object)
            )

        seen, last_contact = contact_matrices(
            (len(user_ids), len(item_ids)),
            np.concatenate([keys(ratings), keys(watches)]).astype(np.int64),
            _contact_seconds(ratings, watches),
        )
        rated = pd.DataFrame(
            {
                "user_idx": np.searchsorted(user_ids, ratings["user_id"].to_numpy()),
                "item_idx": np.searchsorted(item_ids, ratings["movie_id"].to_numpy(dtype=object)),
                "rating": ratings["rating"].to_numpy(dtype=np.float32),
            }
        )
        return cls(user_ids, item_ids, rated, seen, last_contact)

    def popularity(self) -> np.ndarray:
        """Distinct users who rated or watched each movie."""
        return np.asarray(self.seen.sum(axis=0)).ravel()


def contact_matrices(
    shape: tuple[int, int], pair_keys: np.ndarray, times: np.ndarray | None
) -> tuple[sparse.csr_matrix, sparse.csr_matrix | None]:
    """``seen`` and ``last_contact`` from every contact as ``user_idx * n_items + item_idx``
    (duplicates allowed) and its Unix seconds (None: no times). Also how the refresher
    indexes its batches' histories (``refresher.history``)."""
    n_users, n_items = shape
    if times is None:
        unique, latest = np.unique(pair_keys), None
    else:
        # By pair (one key: much faster than sorting by pair and time), then each pair's
        # latest time. The temporaries (8 bytes a row each) go as soon as they are used.
        order = np.argsort(pair_keys)
        ordered = pair_keys[order]
        del pair_keys
        starts = np.flatnonzero(first_of_runs(ordered))
        unique = ordered[starts]
        del ordered
        latest = np.maximum.reduceat(times[order], starts) if len(starts) else times[:0].copy()
        del order, times
    rows = unique // n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
    seen = sparse.csr_matrix(
        (np.ones(len(unique), dtype=np.int8), (unique % n_items).astype(np.int32), indptr),
        shape=shape,
    )
    if latest is None:
        return seen, None
    last_contact = sparse.csr_matrix(
        (latest.astype(np.uint32), seen.indices, seen.indptr), shape=shape, copy=False
    )
    return seen, last_contact


def first_of_runs(ordered: np.ndarray) -> np.ndarray:
    """Where each run of equal values in ``ordered`` starts (a mask)."""
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return first


UINT32_SECONDS = 2**32  # last_contact's range: Unix seconds 0 .. 2**32 - 1 (1970 to 2106)


def _contact_seconds(ratings: pd.DataFrame, watches: pd.DataFrame) -> np.ndarray | None:
    """Unix seconds of every row (ratings first, then watches), or None when a table with
    rows has no time column."""
    parts = []
    for frame, columns in ((ratings, ("time",)), (watches, ("last_time", "first_time"))):
        column = next((c for c in columns if c in frame.columns), None)
        if column is None:
            if len(frame):
                return None
            parts.append(np.zeros(0, dtype=np.int64))
            continue
        stamps = frame[column].to_numpy(dtype="datetime64[us]").astype(np.int64)
        parts.append(np.floor_divide(stamps, 1_000_000))
    seconds = np.concatenate(parts)
    if len(seconds) and (seconds.min() < 0 or seconds.max() >= UINT32_SECONDS):
        raise ValueError("contact times must fall between 1970 and 2106 (uint32 Unix seconds)")
    return seconds
