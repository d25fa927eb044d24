"""What users did, in the snapshot's shape, from either a snapshot or a MovieLens file.

The offline evaluation must run on the service's own snapshots and on public MovieLens files
alike, with one code path. Both become the same two tables: ``ratings`` (user_id, movie_id,
rating, time) and ``watches`` (user_id, movie_id, first_time); a MovieLens file simply has
no watches. Movie IDs from a MovieLens file are the slugs the stream replay gives them
(``training.movielens``), so a replayed stream and the file it came from index alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ingest.snapshot import Snapshot
from training.movielens import find_movies_file, movie_slugs, read_ratings

RATING_COLUMNS = ["user_id", "movie_id", "rating", "time"]
WATCH_COLUMNS = ["user_id", "movie_id", "first_time"]


@dataclass(frozen=True)
class History:
    """Ratings and watches with their times; ``source`` says where they came from."""

    ratings: pd.DataFrame  # user_id int64, movie_id str, rating float, time datetime64
    watches: pd.DataFrame  # user_id int64, movie_id str, first_time datetime64
    source: str

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> History:
        return cls(
            snapshot.ratings[RATING_COLUMNS],
            snapshot.watches[WATCH_COLUMNS],
            source=f"snapshot:{snapshot.snapshot_id}",
        )

    @classmethod
    def from_movielens(cls, path: str | Path) -> History:
        """A MovieLens ratings file (u.data, ratings.dat, ratings.csv), ratings as given.

        Ratings keep the file's own values (half stars included), so RMSE is comparable
        with published figures; a pair rated twice keeps its latest rating, as snapshots do.
        """
        frame = read_ratings(path)
        slugs = movie_slugs(frame["movie"].unique(), find_movies_file(path))
        frame = frame.sort_values("timestamp", kind="stable").drop_duplicates(
            ["user_id", "movie"], keep="last"
        )
        ratings = pd.DataFrame(
            {
                "user_id": frame["user_id"].to_numpy(),
                "movie_id": frame["movie"].map(slugs).to_numpy(dtype=object),
                "rating": frame["rating"].to_numpy(dtype=float),
                "time": pd.to_datetime(frame["timestamp"].to_numpy(), unit="s"),
            }
        )
        watches = pd.DataFrame(
            {
                "user_id": pd.Series([], dtype="int64"),
                "movie_id": pd.Series([], dtype=object),
                "first_time": pd.Series([], dtype="datetime64[us]"),
            }
        )
        return cls(ratings, watches, source=f"movielens:{Path(path).name}")

    def user_ids(self) -> np.ndarray:
        """Every user, sorted (the index every model of an evaluation shares)."""
        return np.union1d(self.ratings["user_id"].to_numpy(), self.watches["user_id"].to_numpy())

    def item_ids(self) -> np.ndarray:
        """Every movie, sorted (the catalogue every model of an evaluation ranks)."""
        return np.union1d(
            self.ratings["movie_id"].to_numpy(dtype=object),
            self.watches["movie_id"].to_numpy(dtype=object),
        ).astype(object)
