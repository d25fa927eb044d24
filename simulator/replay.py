"""A MovieLens ratings file replayed as the stream's rate events, oldest first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ingest.events import Rate
from training.movielens import find_movies_file, movie_slugs, read_ratings, to_stars


def replay_events(path: str | Path) -> Iterator[Rate]:
    """Every rating of a MovieLens file as a Rate event, oldest first (ties keep file order)."""
    ratings = read_ratings(path)
    slugs = movie_slugs(ratings["movie"].unique(), find_movies_file(path))
    ratings = ratings.sort_values("timestamp", kind="stable")
    times = pd.to_datetime(ratings["timestamp"], unit="s").dt.to_pydatetime()
    users = ratings["user_id"].tolist()
    movies = ratings["movie"].map(slugs).tolist()
    stars = to_stars(ratings["rating"]).tolist()
    for time, user, movie, star in zip(times, users, movies, stars, strict=True):
        yield Rate(time, user, movie, star)
