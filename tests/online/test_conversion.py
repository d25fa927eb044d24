"""The conversion join (``online.conversion``), with watches read from real journal
segments: case by case, against a plain Python transcription of its documented rules, and
per user."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from online import frames
from online.conversion import (
    OUTCOME_DTYPES,
    collapse_versions,
    conversions,
    merge_version_outcomes,
    user_outcomes,
    version_outcomes,
)

T0 = datetime(2025, 3, 1, 12, 0, 0)  # at(0)
WINDOW = timedelta(hours=24)
A, B, C, D = "alpha+2001", "beta+2002", "gamma+2003", "delta+2004"
DAY = 24 * 60

# Each case: recommendations, watches (minutes after T0, user, movie, minute), and per
# recommendation the expected (exposure, duplicate, converted, position, minutes).
CASES = {
    "starts a listed movie in the window": (
        [{"t": 0}],
        [(10, 1, B, 0), (11, 1, B, 1), (12, 1, B, 2)],
        [(True, False, True, 2, 3.0)],
    ),
    "position is the movie started first, not the best ranked": (
        [{"t": 0}],
        [(5, 1, C, 0), (30, 1, A, 0), (31, 1, A, 1)],
        [(True, False, True, 3, 3.0)],
    ),
    "watching on in a movie started before does not convert": (
        [{"t": 0}],
        [(-30, 1, B, 0), (1, 1, B, 1), (2, 1, B, 2), (3, 1, B, 3)],
        [(True, False, False, None, 0.0)],
    ),
    "a start after the window does not convert": (
        [{"t": 0}],
        [(DAY + 1, 1, B, 0)],
        [(True, False, False, None, 0.0)],
    ),
    "a start at the recommendation's own time converts": (
        [{"t": 0}],
        [(0, 1, A, 0)],
        [(True, False, True, 1, 1.0)],
    ),
    "a start at the window's last instant converts": (
        [{"t": 0}],
        [(DAY, 1, C, 0), (DAY + 1, 1, C, 1)],  # the minute after the window is not counted
        [(True, False, True, 3, 1.0)],
    ),
    "a repeat within a minute counts once": (
        [{"t": 0}, {"t": 0.5}],
        [(10, 1, B, 0)],
        [(True, False, True, 2, 1.0), (False, True, False, None, 0.0)],
    ),
    "a burst of repeats is one recommendation however long": (
        [{"t": 0}, {"t": 0.75}, {"t": 1.5}, {"t": 2.25}],
        [(10, 1, B, 0)],
        [(True, False, True, 2, 1.0)] + [(False, True, False, None, 0.0)] * 3,
    ),
    "the same list two minutes later is a new recommendation": (
        [{"t": 0}, {"t": 2}],
        [(10, 1, B, 0)],
        [(True, False, True, 2, 1.0), (True, False, True, 2, 1.0)],
    ),
    "the same list in another variant is not a repeat": (
        [{"t": 0}, {"t": 0.1, "variant": "treatment"}],
        [(10, 1, B, 0)],
        [(True, False, True, 2, 1.0), (True, False, True, 2, 1.0)],
    ),
    "a different list right after is not a repeat": (
        [{"t": 0}, {"t": 0.1, "movies": (D, B)}],
        [(10, 1, B, 0)],
        [(True, False, True, 2, 1.0), (True, False, True, 2, 1.0)],
    ),
    "an unknown user never converts": (
        [{"t": 0, "user": 99}],
        [(10, 1, B, 0), (11, 2, A, 0)],
        [(True, False, False, None, 0.0)],
    ),
    "another user's watch does not count": (
        [{"t": 0}],
        [(10, 2, B, 0)],
        [(True, False, False, None, 0.0)],
    ),
    "error responses and rejected user IDs are not exposures": (
        [{"t": 0, "status": 500}, {"t": 0, "status": 400, "user": None}],
        [(10, 1, B, 0)],
        [(False, False, False, None, 0.0), (False, False, False, None, 0.0)],
    ),
    "an unlisted movie does not convert": (
        [{"t": 0}],
        [(10, 1, D, 0)],
        [(True, False, False, None, 0.0)],
    ),
    "minutes: distinct, in the window, of listed movies started in it": (
        [{"t": 0}],
        [
            (10, 1, B, 0),
            (11, 1, B, 1),
            (11, 1, B, 1),  # the stream repeats lines
            (12, 1, B, 2),
            (DAY + 5, 1, B, 3),  # after the window
            (-5, 1, A, 0),  # A was started before: its minutes are not the recommendation's
            (20, 1, A, 1),
            (20, 1, D, 0),  # not listed
        ],
        [(True, False, True, 2, 3.0)],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_conversion_join(
    case: str,
    tmp_path: Path,
    journal_watches: Callable[..., pd.DataFrame],
    recs_frame: Callable[[Iterable[dict]], pd.DataFrame],
) -> None:
    recs, watch_rows, expected = CASES[case]
    recs = recs_frame(recs)
    judged = conversions(recs, journal_watches(tmp_path, watch_rows), WINDOW)
    got = [
        (e, d, c, None if pd.isna(p) else int(p), m)
        for e, d, c, p, m in judged[["exposure", "duplicate", "converted", "position", "minutes"]]
        .astype(object)
        .itertuples(index=False)
    ]
    assert got == expected
    assert list(judged.index) == list(recs.index)


def reference_judge(
    recs: pd.DataFrame, watches: pd.DataFrame, window: timedelta, dedup: timedelta
) -> list[tuple]:
    """The documented rules, one recommendation at a time, in plain Python."""
    first: dict[tuple, datetime] = {}
    for w in watches.itertuples():
        key = (w.user, w.movie)
        first[key] = min(first.get(key, w.time), w.time)
    previous: dict[tuple, datetime] = {}
    result: dict[int, tuple] = {}
    for i in sorted(range(len(recs)), key=lambda i: (recs["time"].iloc[i], i)):
        r = recs.iloc[i]
        if r.status != 200 or pd.isna(r.user) or not r.movies:
            result[i] = (False, False, False, None, 0.0)
            continue
        key = (r.user, r.variant, r.version, r.movies)
        repeat = key in previous and r.time - previous[key] <= dedup
        previous[key] = r.time
        if repeat:
            result[i] = (False, True, False, None, 0.0)
            continue
        started = sorted(
            (first[(r.user, m)], position, m)
            for position, m in enumerate(r.movies, 1)
            if (r.user, m) in first and r.time <= first[(r.user, m)] <= r.time + window
        )
        if not started:
            result[i] = (True, False, False, None, 0.0)
            continue
        movies = {m for _, _, m in started}
        minutes = {
            (w.movie, w.minute)
            for w in watches.itertuples()
            if w.user == r.user and w.movie in movies and r.time <= w.time <= r.time + window
        }
        result[i] = (True, False, True, started[0][1], float(len(minutes)))
    return [result[i] for i in range(len(recs))]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_conversion_join_agrees_with_the_rules_written_out(seed: int) -> None:
    rng = np.random.default_rng(seed)
    movies = [f"film{i}+{1990 + i}" for i in range(12)]
    lists = [tuple(rng.choice(movies, 4, replace=False)) for _ in range(5)]
    n = 400
    status = rng.choice([200, 200, 200, 500], n)
    recs = frames.recommendations(
        time=T0 + pd.to_timedelta(rng.integers(0, 6 * 3600, n), unit="s"),
        user=[None if s == 400 else u for s, u in zip(status, rng.integers(1, 9, n), strict=True)],
        status=status,
        variant=rng.choice(["control", "treatment"], n),
        version=["v1"] * n,
        source=["personal"] * n,
        latency_ms=np.ones(n),
        movies=[
            lists[k] if s == 200 else () for k, s in zip(rng.integers(0, 5, n), status, strict=True)
        ],
    )
    m = 1500
    watches = frames.watches(
        time=T0 + pd.to_timedelta(rng.integers(-3600, 8 * 3600, m), unit="s"),
        user=rng.integers(1, 11, m),  # users 9 and 10 are never recommended anything
        movie=rng.choice(movies, m),
        minute=rng.integers(0, 6, m),
    )
    window, dedup = timedelta(hours=1), timedelta(seconds=60)
    judged = conversions(recs, watches, window, dedup)
    got = [
        (e, d, c, None if pd.isna(p) else int(p), m)
        for e, d, c, p, m in judged.astype(object).itertuples(index=False)
    ]
    expected = reference_judge(recs, watches, window, dedup)
    assert got == expected
    assert 0 < sum(e[2] for e in expected) < sum(e[0] for e in expected)  # a real mix
    assert any(e[1] for e in expected)


def test_user_outcomes_is_one_row_per_user_and_variant(
    tmp_path: Path,
    at: Callable[[float], datetime],
    journal_watches: Callable[..., pd.DataFrame],
    recs_frame: Callable[[Iterable[dict]], pd.DataFrame],
) -> None:
    recs = recs_frame(
        [
            {"t": 0, "user": 1, "version": "v1"},
            {"t": 0.2, "user": 1, "version": "v1"},  # a repeat
            {"t": 60, "user": 1, "version": "v2", "movies": (D,)},
            {"t": 15, "user": 1, "variant": "treatment", "version": "v3"},
            {"t": 1, "user": 2, "variant": "treatment", "version": "v3"},
            {"t": 2, "user": 3, "status": 500},  # only errors: never exposed
            {"t": 3, "user": None, "status": 400},
        ]
    )
    watches = journal_watches(
        tmp_path, [(10, 1, B, 0), (11, 1, B, 1), (70, 1, D, 0), (100, 2, A, 0)]
    )
    out = user_outcomes(recs, watches, WINDOW)
    assert {c: str(t) for c, t in out.dtypes.items()} == OUTCOME_DTYPES
    assert list(out.columns) == list(OUTCOME_DTYPES)
    rows = {(r.user, r.variant): r for r in out.itertuples(index=False)}
    assert set(rows) == {(1, "control"), (1, "treatment"), (2, "treatment")}
    control = rows[(1, "control")]
    assert (control.version, control.first_exposure) == ("v1", pd.Timestamp(at(0)))
    assert (control.exposures, control.conversions, control.converted) == (2, 2, True)
    assert control.minutes == 3.0  # B's two minutes after the first, D's one after the second
    # the treatment list (A, B, C) came after B was started at minute 10: no start follows it
    assert (rows[(1, "treatment")].conversions, rows[(1, "treatment")].converted) == (0, False)
    assert rows[(2, "treatment")].converted
    # The incremental job's route (per version, merged, collapsed) gives the same table.
    judged = conversions(recs, watches, WINDOW)
    halves = [recs.index < 3, recs.index >= 3]
    merged = merge_version_outcomes(*(version_outcomes(recs[h], judged[h]) for h in halves))
    pd.testing.assert_frame_equal(collapse_versions(merged), out)
