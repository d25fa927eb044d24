"""Each pair's latest contact time in ``Interactions`` and the history weighting built on it
(``training.weighting``), against hand-computed values on a few users."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training.interactions import Interactions
from training.weighting import Weighting, history_matrix, recency_rank

T0 = pd.Timestamp("2025-01-01")


def at(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """User 1: a (rated at 0, watched 10..50), b (rated at 20), c (watched 30..40), d (watched
    at 40..40, a tie with c's last watch). User 2: a (rated at 60, 2 stars)."""
    ratings = pd.DataFrame(
        {
            "user_id": [1, 1, 2],
            "movie_id": ["a", "b", "a"],
            "rating": [4, 5, 2],
            "time": [at(0), at(20), at(60)],
        }
    )
    watches = pd.DataFrame(
        {
            "user_id": [1, 1, 1],
            "movie_id": ["a", "c", "d"],
            "first_time": [at(10), at(30), at(40)],
            "last_time": [at(50), at(40), at(40)],
        }
    )
    return ratings, watches


def seconds(minutes: float) -> int:
    return int(at(minutes).timestamp())


def test_last_contact_is_the_latest_of_rating_and_watch() -> None:
    data = Interactions.from_frames(*frames())
    assert list(data.item_ids) == ["a", "b", "c", "d"]
    contact = data.last_contact
    assert contact is not None and contact.dtype == np.uint32
    # seen's pattern, sharing its index arrays (4 bytes a pair, no second index).
    assert np.shares_memory(contact.indices, data.seen.indices)
    assert contact.toarray().tolist() == [
        [seconds(50), seconds(20), seconds(40), seconds(40)],
        [seconds(60), 0, 0, 0],
    ]


def test_without_last_time_a_watch_counts_at_its_first_time() -> None:
    ratings, watches = frames()
    data = Interactions.from_frames(ratings, watches.drop(columns="last_time"))
    assert data.last_contact is not None
    assert data.last_contact[0, 0] == seconds(10)  # later than the rating at 0
    assert data.last_contact[0, 2] == seconds(30)


def test_frames_without_times_have_no_contact_and_refuse_recency() -> None:
    ratings, watches = frames()
    data = Interactions.from_frames(ratings.drop(columns="time"), watches)
    assert data.last_contact is None
    assert data.seen.nnz == 5
    assert history_matrix(data, Weighting("rating")).nnz == 5  # value alone needs no time
    with pytest.raises(ValueError, match="contact times"):
        history_matrix(data, Weighting(recency="rank"))


def test_recency_rank_is_latest_first_ties_by_higher_movie_index() -> None:
    data = Interactions.from_frames(*frames())
    assert data.last_contact is not None
    # User 1: a at 50 (rank 0), d and c at 40 (d, the higher index, counts as later), b at 20.
    assert recency_rank(data.last_contact).tolist() == [0, 3, 2, 1, 0]


def test_the_weights_follow_the_formula() -> None:
    data = Interactions.from_frames(*frames())
    stars = history_matrix(data, Weighting("rating")).toarray()
    # Stars over the highest rating (5); watched-only movies count 1.
    np.testing.assert_allclose(stars, [[0.8, 1.0, 1.0, 1.0], [0.4, 0, 0, 0]])

    tau, floor = 2.0, 0.1

    def w(r: float) -> float:
        return floor + (1 - floor) * math.exp(-r / tau)

    rank = history_matrix(data, Weighting("binary", "rank", tau, floor)).toarray()
    np.testing.assert_allclose(rank[0], [w(0), w(3), w(2), w(1)], rtol=1e-6)
    relrank = history_matrix(data, Weighting("rating", "relrank", 0.5, floor)).toarray()
    rel = [floor + (1 - floor) * math.exp(-r / 4 / 0.5) for r in (0, 3, 2, 1)]
    np.testing.assert_allclose(relrank[0], np.multiply([0.8, 1, 1, 1], rel), rtol=1e-6)
    assert relrank[1, 0] == pytest.approx(0.4)  # a one-movie user: its latest, weight 1
    days = history_matrix(data, Weighting("binary", "time", 0.01, 0.0)).toarray()
    ages = np.array([0, 30, 10, 10]) / (24 * 60)  # minutes before the user's latest, in days
    np.testing.assert_allclose(days[0], np.exp(-ages / 0.01), rtol=1e-5)


@pytest.mark.parametrize(
    ("field", "value"),
    [("value", "stars"), ("recency", "latest"), ("tau", 0.0), ("floor", 1.0), ("floor", -0.1)],
)
def test_bad_weightings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        Weighting(**{field: value})  # type: ignore[arg-type]
