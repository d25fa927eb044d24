"""A batch's histories (``refresher.history.Base.histories``: the snapshot's rows merged with
the events since, in numpy) are what indexing a snapshot cut of every event gives
(``ingest.snapshot``'s own cut functions, ``training.foldin.on_catalogue``): the latest
rating of each pair by time then offset, every contact's latest time, movies outside the
model's catalogue dropped; for any stream and any cut point."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.events import Rate, Watch
from ingest.snapshot import Manifest, Snapshot, latest_ratings, watch_history
from refresher.history import Base
from refresher.recent import Recent
from training.factors import FactorModel
from training.foldin import on_catalogue
from training.registry import ModelMeta

START = datetime(2026, 11, 1)
COLUMNS = ["partition", "offset", "kind", "time", "user_id", "movie_id", "minute", "rating"]
CATALOGUE = np.array(["m0", "m1", "m2", "m3"], dtype=object)  # "mx" is outside it

events = st.lists(
    st.tuples(
        st.booleans(),  # a rating (else a watch)
        st.integers(1, 4),  # user
        st.sampled_from(["m0", "m1", "m2", "m3", "mx"]),
        st.integers(0, 5),  # seconds after START: ties happen
        st.integers(1, 5),  # stars, or the minute watched
    ),
    max_size=30,
)


def journal(rows: list[tuple[bool, int, str, int, int]], first: int) -> pd.DataFrame:
    """Rows as the journal holds them, at offsets from ``first`` (two partitions, a user's
    events in one: the stream is keyed by user)."""
    frame = pd.DataFrame(
        [
            (u % 2, first + i, "rate" if r else "watch", START + timedelta(seconds=s), u, m)
            + ((None, v) if r else (v, None))
            for i, (r, u, m, s, v) in enumerate(rows)
        ],
        columns=COLUMNS,
    )
    return frame.astype({"time": "datetime64[us]", "minute": "float64", "rating": "float64"})


@given(events, events)
@settings(max_examples=200, deadline=None)
def test_a_batch_merges_as_a_cut_of_every_event_would(
    before: list[tuple[bool, int, str, int, int]], after: list[tuple[bool, int, str, int, int]]
) -> None:
    old = journal(before, 0)
    snapshot = Snapshot(
        cast(Manifest, None),
        latest_ratings(old).to_pandas(),
        watch_history(old).to_pandas(),
        pd.DataFrame(),
        pd.DataFrame(),
    )
    empty = np.zeros((0, 0), dtype=np.float32)
    model = FactorModel(
        "none", np.zeros(0, np.int64), CATALOGUE, empty, np.zeros((4, 0)), np.zeros(4)
    )
    base = Base(model, cast(ModelMeta, None), snapshot)
    recent = Recent()
    for i, (is_rate, user, movie, second, value) in enumerate(after):
        time = START + timedelta(seconds=second)
        event = Rate(time, user, movie, value) if is_rate else Watch(time, user, movie, value)
        recent.add(user % 2, len(before) + i, event, 0.0)
    users = np.arange(1, 5, dtype=np.int64)

    got = base.histories(
        users, recent.since(users.tolist(), {0: len(before) - 1, 1: len(before) - 1})
    )

    every = pd.concat([old, journal(after, len(before))])
    expected = on_catalogue(
        latest_ratings(every).to_pandas(), watch_history(every).to_pandas(), CATALOGUE, users
    )
    assert (got.seen != expected.seen).nnz == 0
    assert (got.last_contact != expected.last_contact).nnz == 0
    columns = ["user_idx", "item_idx", "rating"]
    ordered = expected.ratings.sort_values(columns[:2]).reset_index(drop=True)
    assert got.ratings[columns].reset_index(drop=True).equals(ordered[columns])
    assert list(got.user_ids) == list(users) and list(got.item_ids) == list(CATALOGUE)
