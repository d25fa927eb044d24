"""The global-time split (``training.split.global_split``) and the leaderboard on it: what
``make eval-served`` compares the live service with."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.evaluate import evaluate_lists, leaderboard, parse_split, top_lists
from training.history import History
from training.popularity import Popularity
from training.split import global_cutoff, global_split

REPO = Path(__file__).resolve().parents[2]


def history(rows: list[tuple[int, str, int]], watches: list[tuple[int, str, int]] = ()) -> History:
    """(user, movie, day) ratings and watches (first watch on that day) of 4 stars."""
    day = pd.Timestamp("2025-01-01")
    return History(
        pd.DataFrame(
            {
                "user_id": np.array([r[0] for r in rows], dtype=np.int64),
                "movie_id": np.array([r[1] for r in rows], dtype=object),
                "rating": np.full(len(rows), 4.0),
                "time": [day + pd.Timedelta(days=r[2]) for r in rows],
            }
        ),
        pd.DataFrame(
            {
                "user_id": np.array([w[0] for w in watches], dtype=np.int64),
                "movie_id": np.array([w[1] for w in watches], dtype=object),
                "first_time": pd.Series(
                    [day + pd.Timedelta(days=w[2]) for w in watches], dtype="datetime64[us]"
                ),
            }
        ),
        source="test",
    )


# Days 0-7 before the cut (8 of 10 events), 8-9 after; user 3 arrives after the cut.
ROWS = [
    (1, "a+2000", 0),
    (1, "b+2000", 1),
    (2, "a+2000", 2),
    (2, "c+2000", 3),
    (1, "c+2000", 4),
    (2, "b+2000", 5),
    (1, "d+2000", 6),
    (2, "d+2000", 7),
    (1, "e+2000", 8),  # a movie nobody saw before the cut
    (3, "a+2000", 9),  # a user nobody saw before the cut
]


def test_the_cut_leaves_the_share_before_it() -> None:
    h = history(ROWS)
    assert global_cutoff(h, 0.8) == np.datetime64("2025-01-09")
    assert global_cutoff(h, 0.5) == np.datetime64("2025-01-06")
    with pytest.raises(ValueError):
        global_cutoff(h, 1.0)


def test_train_is_before_the_cut_test_the_new_movies_after_it() -> None:
    # User 2 watched f before the cut and rates it after (seen: not a test movie), and
    # first watches e after it (a test movie, and one no list can hold).
    h = history([*ROWS, (2, "f+2000", 9)], watches=[(2, "f+2000", 3), (2, "e+2000", 8)])
    split = global_split(h, train_share=0.8)
    assert split.cutoff == np.datetime64("2025-01-09")
    assert split.train_events == 9
    assert list(split.train.user_ids) == [1, 2, 3]
    assert list(split.train.item_ids) == ["a+2000", "b+2000", "c+2000", "d+2000", "f+2000"]
    assert list(split.new_movies) == ["e+2000"]
    assert split.test.shape == (3, 6)
    columns = [*split.train.item_ids, *split.new_movies]
    held = {
        (int(split.train.user_ids[u]), columns[m])
        for u, m in zip(*split.test.nonzero(), strict=True)
    }
    assert held == {(1, "e+2000"), (2, "e+2000"), (3, "a+2000")}
    assert list(split.test_users) == [0, 1, 2]
    assert list(split.cold_users) == [2]
    # What a snapshot of the events before the cut holds, in its (user, movie) order.
    assert list(split.snapshot.user_ids) == [1, 2]
    assert np.array_equal(split.snapshot.item_ids, split.train.item_ids)
    assert (split.snapshot.seen != split.train.seen[:2]).nnz == 0
    assert split.snapshot.seen[1, 4] == 1  # f, watched before the cut
    assert split.snapshot.ratings[["user_idx", "item_idx"]].values.tolist() == [
        [0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 1], [1, 2], [1, 3],
    ]  # fmt: skip
    # Held-out ratings only of movies a model can score: user 3's rating of a.
    assert split.test_ratings[["user_idx", "item_idx"]].values.tolist() == [[2, 0]]


def test_lists_from_elsewhere_score_as_the_models_own() -> None:
    split = global_split(history(ROWS), train_share=0.8)
    users = split.test_users
    assert list(split.train.user_ids[users]) == [1, 3]  # user 2 has nothing new after the cut
    model = Popularity().fit(split.snapshot)
    own = [
        split.train.item_ids[row[row >= 0]].tolist()
        for _, top in top_lists(model, split, users, 20)
        for row in top
    ]
    # User 1 has seen every movie of the catalogue; user 3, a cold start, gets popularity.
    assert own == [[], ["a+2000", "b+2000", "c+2000", "d+2000"]]
    board = leaderboard(history(ROWS), [Popularity()], global_share=0.8)
    assert board["protocol"]["split"] == "global by time"
    assert (board["users"], board["protocol"]["cold_users"]) == (2, 1)
    assert board["models"]["popularity"]["ndcg@20"] == pytest.approx(0.5)
    assert evaluate_lists(split, users, own, 20)["ndcg@20"] == pytest.approx(0.5)
    # A movie the catalogue does not hold is a miss, as a short list's empty places are.
    assert evaluate_lists(split, users, [["e+2000"], ["zz+1999"]], 20)["ndcg@20"] == 0.0


def test_split_option() -> None:
    assert parse_split("per-user") is None
    assert parse_split("global:0.8") == 0.8
    for bad in ("global:1", "global:x", "random:0.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            parse_split(bad)


def test_the_cli_takes_the_split(tmp_path: Path) -> None:
    ratings = tmp_path / "u.data"
    ratings.write_text(
        "".join(
            f"{user}\t{movie}\t4\t{900_000_000 + 3600 * (30 * user + movie)}\n"
            for user in range(1, 9)
            for movie in range(1, 30, user)
        )
    )
    argv = ["--ratings", str(ratings), "--models", "popularity", "--split", "global:0.8"]
    done = subprocess.run(
        [sys.executable, "-m", "training.evaluate", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    board = json.loads(done.stdout)
    assert board["protocol"]["split"] == "global by time"
    assert board["users"] > 0
