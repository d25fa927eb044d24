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


@dataclass(frozen=True)
class GlobalSplit(TemporalSplit):
    """One cut in time for everyone, as production has: train on what happened before
    ``cutoff``, test on what each user did after it (``global_split``).

    ``train`` is indexed over every user of the history (users whose first event came after
    the cut have empty rows: they are the cold-start users, whom the service answers with
    its cold-start list) and over the movies seen before the cut only: the catalogue a
    snapshot cut at that time holds, and so all a model trained on it can rank. ``test`` has
    one more column per movie first seen after the cut (``new_movies``, in that order): they
    count as relevant but no list can hold them, for the live service as for the leaderboard.
    ``snapshot`` is the training part exactly as a snapshot of those events indexes it (only
    users and movies seen before the cut, ratings in the snapshot's (user, movie) order):
    models are fitted on it, so that a model fitted here is the very one a retrain on that
    snapshot fits. ``test_ratings`` keeps held-out ratings of catalogue movies only (a model
    predicts nothing for a movie it has never seen). ``test_share`` is the share of events
    at or after the cut; ``min_interactions`` is 1: every user with a new movie after the cut
    is evaluated, as every such user asks the service.
    """

    cutoff: np.datetime64
    train_events: int  # history rows (ratings, watched pairs) before the cut
    snapshot: Interactions
    new_movies: np.ndarray  # movie IDs first seen at or after the cut, sorted

    @property
    def cold_users(self) -> np.ndarray:
        """Rows of test users with nothing before the cut (no row in ``snapshot``)."""
        users = self.test_users
        return users[np.diff(self.train.seen.indptr)[users] == 0]


def global_cutoff(history: History, train_share: float = 0.8) -> np.datetime64:
    """The time T before which ``train_share`` of the history's events happened: the time of
    the event at that position in time order (ratings at their time, watched movies at their
    first watch). Events at T itself fall after the cut, so ties leave a little less before."""
    if not 0 < train_share < 1:
        raise ValueError(f"train_share must be in (0, 1), not {train_share}")
    times = np.sort(_event_times(history))
    if len(times) < 2:
        raise ValueError(f"{history.source} has too few events to cut in time")
    return times[min(int(np.floor(len(times) * train_share + 1e-9)), len(times) - 1)]


def _event_times(history: History) -> np.ndarray:
    return np.concatenate(
        [
            history.ratings["time"].to_numpy(dtype="datetime64[us]"),
            history.watches["first_time"].to_numpy(dtype="datetime64[us]"),
        ]
    )


def global_split(
    history: History, *, train_share: float = 0.8, cutoff: np.datetime64 | None = None
) -> GlobalSplit:
    """Cut the whole history at one time T (``cutoff``, default ``global_cutoff(history,
    train_share)``): train is every event before T; each user's test set is the distinct
    movies they first rated or watched at or after T, that is, not seen before T."""
    cut = np.datetime64(cutoff if cutoff is not None else global_cutoff(history, train_share))
    cut = cut.astype("datetime64[us]")
    ratings, watches = history.ratings, history.watches
    rating_before = ratings["time"].to_numpy(dtype="datetime64[us]") < cut
    watch_before = watches["first_time"].to_numpy(dtype="datetime64[us]") < cut
    # The training part in a snapshot's row order (ingest.snapshot: by user, then movie).
    order = ["user_id", "movie_id"]
    train_ratings = ratings[rating_before].sort_values(order, kind="stable")
    train_watches = watches[watch_before].sort_values(order, kind="stable")
    snapshot = Interactions.from_frames(train_ratings, train_watches)
    user_ids, item_ids = history.user_ids(), snapshot.item_ids
    train = Interactions.from_frames(
        train_ratings, train_watches, user_ids=user_ids, item_ids=item_ids
    )
    new_movies = np.setdiff1d(history.item_ids(), item_ids).astype(object)
    n_items = len(item_ids)

    def keys(frame: pd.DataFrame) -> np.ndarray:
        """user row x (catalogue + new movies) column, as one integer per pair."""
        movies = frame["movie_id"].to_numpy(dtype=object)
        known = np.isin(movies, item_ids)
        cols = np.where(
            known,
            np.searchsorted(item_ids, movies),
            n_items + np.searchsorted(new_movies, movies),
        )
        rows = np.searchsorted(user_ids, frame["user_id"].to_numpy())
        return rows.astype(np.int64) * (n_items + len(new_movies)) + cols

    width = n_items + len(new_movies)
    rating_keys, watch_keys = keys(ratings), keys(watches)
    before = np.union1d(rating_keys[rating_before], watch_keys[watch_before])
    after = np.union1d(rating_keys[~rating_before], watch_keys[~watch_before])
    test_keys = np.setdiff1d(after, before)
    test = sparse.csr_matrix(
        (np.ones(len(test_keys), dtype=np.int8), (test_keys // width, test_keys % width)),
        shape=(len(user_ids), width),
    )
    rated_test = ~rating_before & np.isin(rating_keys, test_keys) & (rating_keys % width < n_items)
    test_ratings = pd.DataFrame(
        {
            "user_idx": rating_keys[rated_test] // width,
            "item_idx": rating_keys[rated_test] % width,
            "rating": ratings["rating"].to_numpy(dtype=float)[rated_test],
        }
    )
    events = len(rating_before) + len(watch_before)
    train_events = int(rating_before.sum() + watch_before.sum())
    return GlobalSplit(
        train=train,
        test=test,
        test_ratings=test_ratings,
        test_share=1 - train_events / max(events, 1),
        min_interactions=1,
        cutoff=cut,
        train_events=train_events,
        snapshot=snapshot,
        new_movies=new_movies,
    )
