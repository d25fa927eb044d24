"""The held-out split of the evaluation protocol: per user, by time.

Each user's distinct movies are ordered by first contact (first watch or rating, whichever
came first); the latest ``test_share`` of them (at least one) are held out, the rest train.
Users with fewer than ``min_interactions`` movies are train-only: they still teach the
models, but a one-movie test set says nothing. Splitting by time rather than at random is
what production does to a model (it learns from the past, is judged on what comes next),
so popularity trends cannot leak from the future into training.

A held-out pair leaves training entirely: its rating and its watch both go.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from training.history import History
from training.interactions import Interactions


@dataclass(frozen=True)
class TemporalSplit:
    train: Interactions  # indexed over every user and movie of the history
    test: sparse.csr_matrix  # users x items: 1 where a movie was held out for that user
    test_ratings: pd.DataFrame  # user_idx, item_idx, rating of held-out pairs that were rated
    test_share: float
    min_interactions: int

    @property
    def test_users(self) -> np.ndarray:
        """Rows (into ``train.user_ids``) of the users the metrics are computed over."""
        return np.flatnonzero(np.diff(self.test.indptr))


def temporal_split(
    history: History, *, test_share: float = 0.2, min_interactions: int = 5
) -> TemporalSplit:
    """Hold out each eligible user's latest ``test_share`` of movies (see the module doc)."""
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be in (0, 1), not {test_share}")
    user_ids, item_ids = history.user_ids(), history.item_ids()
    n_items = len(item_ids)

    def keys(frame: pd.DataFrame) -> np.ndarray:
        rows = np.searchsorted(user_ids, frame["user_id"].to_numpy())
        cols = np.searchsorted(item_ids, frame["movie_id"].to_numpy(dtype=object))
        return rows.astype(np.int64) * n_items + cols

    rating_keys, watch_keys = keys(history.ratings), keys(history.watches)
    contact = pd.DataFrame(
        {
            "key": np.concatenate([rating_keys, watch_keys]),
            "time": np.concatenate(
                [
                    history.ratings["time"].to_numpy(dtype="datetime64[us]"),
                    history.watches["first_time"].to_numpy(dtype="datetime64[us]"),
                ]
            ),
        }
    )
    first = contact.groupby("key", sort=False)["time"].min().reset_index()
    first["user"] = first["key"].to_numpy() // n_items
    first["item"] = first["key"].to_numpy() % n_items
    # Ties in time go by movie index, so the split is a function of the data alone.
    first = first.sort_values(["user", "time", "item"], kind="stable")
    per_user = first.groupby("user", sort=False)["key"]
    count = per_user.transform("size").to_numpy()
    position = per_user.cumcount().to_numpy()
    held = np.where(
        count >= min_interactions,
        np.maximum(1, np.floor(count * test_share + 1e-9)).astype(np.int64),
        0,
    )
    is_test = position >= count - held
    test_keys = np.sort(first["key"].to_numpy()[is_test])

    train = Interactions.from_frames(
        history.ratings[~np.isin(rating_keys, test_keys)],
        history.watches[~np.isin(watch_keys, test_keys)],
        user_ids=user_ids,
        item_ids=item_ids,
    )
    test = sparse.csr_matrix(
        (
            np.ones(len(test_keys), dtype=np.int8),
            (test_keys // n_items, test_keys % n_items),
        ),
        shape=(len(user_ids), n_items),
    )
    rated_test = np.isin(rating_keys, test_keys)
    test_ratings = pd.DataFrame(
        {
            "user_idx": rating_keys[rated_test] // n_items,
            "item_idx": rating_keys[rated_test] % n_items,
            "rating": history.ratings["rating"].to_numpy(dtype=float)[rated_test],
        }
    )
    return TemporalSplit(train, test, test_ratings, test_share, min_interactions)
