"""Drift between snapshot windows: a day against the next passes, planted shifts do not.

Windows are cut from one simulated stream by offset, as the snapshot cutter cuts them: the
events beyond the parent's offsets, the lines rejected among them, and the users and movies
seen before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import drift
from ingest.drift import Check, DriftBounds, DriftReport, Profile, compare, profile
from ingest.events import parse_line
from ingest.journal import SegmentBuilder
from ingest.schema import JOURNAL
from simulator.traffic import World

START = datetime(2025, 1, 1)
NOW = datetime(2030, 1, 1)  # the stream's times are in the past: nothing is "future"
DAY = timedelta(days=1)
# About 33k events, 350+ ratings and 800+ users a day: every check has enough to judge.
WORLD = {"users": 4500, "movies": 1500, "seed": 3}
DAYS = 4


@dataclass(frozen=True)
class Stream:
    events: pd.DataFrame  # accepted, JOURNAL columns, in offset order
    rejected: np.ndarray  # offsets of the rejected lines


def simulate() -> Stream:
    """A few days of one world's stream, through the grammar, as the journal holds it."""
    builder = SegmentBuilder(0)
    world = World.build(**WORLD)
    for offset, (_, line) in enumerate(world.generate(days=DAYS, start=START, noise=0.01)):
        builder.add(offset, parse_line(line, now=NOW), line)
    events = pa.table(builder.columns, schema=JOURNAL).to_pandas()
    return Stream(events, np.array([offset for offset, *_ in builder.rejected]))


@pytest.fixture(scope="module")
def stream() -> Stream:
    return simulate()


Transform = Callable[[pd.DataFrame, int], tuple[pd.DataFrame, int]]


def window(
    stream: Stream, first_day: int, last_day: int | None = None, transform: Transform | None = None
) -> Profile:
    """The profile of days [first_day, last_day] of the stream, cut by offset."""
    events, times = stream.events, stream.events["time"]
    lo = events["offset"][times >= START + first_day * DAY].min()
    after = events["offset"][times >= START + ((last_day or first_day) + 1) * DAY]
    hi = after.min() if len(after) else events["offset"].max() + 1
    inside = (events["offset"] >= lo) & (events["offset"] < hi)
    frame, before = events[inside], events[events["offset"] < lo]
    rejected = int(((stream.rejected >= lo) & (stream.rejected < hi)).sum())
    if transform is not None:
        frame, rejected = transform(frame, rejected)
    known_users = set(before["user_id"].unique())
    known_movies = set(before["movie_id"].dropna().unique())
    return profile(frame, rejected, known_users, known_movies, scale_high=5)


def journal_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows (dicts of some JOURNAL columns) as the frame the journal would give."""
    columns = {name: [row.get(name) for row in rows] for name in JOURNAL.names}
    return pa.table(columns, schema=JOURNAL).to_pandas()


# --- the same world, day after day ----------------------------------------------------


def test_consecutive_days_are_not_suspect(stream: Stream) -> None:
    day2, day3 = window(stream, 2), window(stream, 3)
    for report in (compare(day2, day3), compare(day3, day2)):
        assert not report.suspect, report.render()
        assert all(check.judged for check in report.checks), report.render()
        assert report.verdict == "OK: 9 checks within bounds"
    assert day3.events > 25_000
    assert day3.hours == pytest.approx(24, abs=1)
    assert day3.rejected_share == pytest.approx(0.01, abs=0.005)  # the simulator's noise
    assert sum(day3.rating_histogram.values()) == pytest.approx(1)
    assert 0 < day3.new_user_share < 0.5  # most of a day's users were seen before


def test_a_backlog_parent_compares_per_hour_and_per_day(stream: Stream) -> None:
    """The first snapshot holds the whole backlog (days 0-1, nothing known before it); the
    next holds one day. Volume per stream hour and minutes per watcher-day do not grow with
    the window, and new-user shares against 'everyone is new' are not judged."""
    backlog, day2 = window(stream, 0, 1), window(stream, 2)
    assert backlog.events > 1.8 * day2.events
    assert backlog.new_user_share == 1.0
    report = compare(backlog, day2)
    assert not report.suspect, report.render()
    assert report.check("volume").judged
    assert report.check("watch_minutes").judged
    # Over the whole window, minutes per watcher do grow with its length: not checked.
    assert backlog.minutes_per_watcher > 1.15 * day2.minutes_per_watcher
    for name in ("new_users", "new_movies"):
        assert not report.check(name).judged
        assert "start of the stream" in report.check(name).note


# --- planted shifts -------------------------------------------------------------------


def ratings_down(frame: pd.DataFrame, rejected: int) -> tuple[pd.DataFrame, int]:
    """Every 5-star rating arrives as 1 star (a client mapping the scale backwards)."""
    frame = frame.copy()
    frame.loc[(frame["kind"] == "rate") & (frame["rating"] == 5), "rating"] = 1
    return frame, rejected


def new_user_flood(frame: pd.DataFrame, rejected: int) -> tuple[pd.DataFrame, int]:
    """3,000 sign-ups from IDs never seen, spread over the day (a bot wave)."""
    first = frame["time"].min()
    flood = journal_frame(
        [
            {
                "partition": 0,
                "offset": 10**9 + i,
                "kind": "account",
                "time": first + timedelta(seconds=28 * i),
                "user_id": 10**12 + i,
            }
            for i in range(3000)
        ]
    )
    return pd.concat([frame, flood], ignore_index=True), rejected


def volume_collapse(frame: pd.DataFrame, rejected: int) -> tuple[pd.DataFrame, int]:
    """Nine in ten users' traffic lost (a partition no longer produced), rejects alike."""
    return frame[frame["user_id"] % 10 == 0], rejected // 10


def watch_halved(frame: pd.DataFrame, rejected: int) -> tuple[pd.DataFrame, int]:
    """The player logs every other minute: distinct watch minutes halve."""
    odd = (frame["kind"] == "watch") & (frame["minute"] % 2 == 1)
    return frame[~odd], rejected


def rejects_surge(frame: pd.DataFrame, rejected: int) -> tuple[pd.DataFrame, int]:
    """A producer changed its format: 30% of all lines are rejected."""
    return frame, rejected + int(0.3 / 0.7 * len(frame))


@pytest.mark.parametrize(
    ("transform", "failing", "verdict"),
    [
        (ratings_down, {"rating_mean", "rating_histogram"}, "SUSPECT: rating mean fell 1."),
        (new_user_flood, {"new_users"}, "SUSPECT: share of new users rose 0."),
        (volume_collapse, {"volume", "rating_volume"}, "SUSPECT: event volume fell to 0.0"),
        (
            watch_halved,
            {"watch_minutes", "minutes_per_watch"},
            "SUSPECT: watch minutes per watcher-day fell to 0.5",
        ),
        (rejects_surge, {"rejected_share"}, "SUSPECT: rejected share rose 0.3"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_a_planted_shift_is_suspect(
    stream: Stream, transform: Transform, failing: set[str], verdict: str
) -> None:
    previous, shifted = window(stream, 2), window(stream, 3, transform=transform)
    report = compare(previous, shifted)
    assert report.suspect
    assert {check.name for check in report.failed} == failing, report.render()
    assert report.verdict.startswith(verdict), report.verdict
    text = report.render()
    assert text.splitlines()[0] == report.verdict
    for name in failing:
        row = next(line for line in text.splitlines() if line.startswith(f"| {_label(name)} |"))
        assert row.endswith("| FAIL |")
    # The same shift seen the other way round (the parent was the odd one) is as suspect,
    # except for rejects, where only a rise is.
    backwards = {check.name for check in compare(shifted, previous).failed}
    assert backwards == failing - {"rejected_share"}


def test_rating_shift_reads_well(stream: Stream) -> None:
    report = compare(window(stream, 2), window(stream, 3, transform=ratings_down))
    mean, histogram = report.check("rating_mean"), report.check("rating_histogram")
    assert mean.value == pytest.approx(-4 * report.previous.rating_histogram["5"], abs=0.15)
    assert mean.bound == (-0.3, 0.3)
    assert histogram.note.startswith("5 stars: ")
    assert histogram.current == 0.0
    assert report.current.rating_histogram["5"] == 0.0
    assert "rating mean fell 1." in report.verdict and "(bound +/-0.3)" not in report.verdict
    assert "; bound +/-0.3)" in report.verdict


def _label(name: str) -> str:
    return Check(name, None, None, None, (None, None), True).label


# --- windows too small to judge -------------------------------------------------------


def test_a_small_window_is_not_judged_on_its_distributions(stream: Stream) -> None:
    """600 events just after the parent (a cut minutes later): even with every 5 turned
    into a 1, a few dozen ratings prove nothing, and the verdict says so."""

    def first_600(frame: pd.DataFrame, rejected: int) -> tuple[pd.DataFrame, int]:
        return ratings_down(frame.iloc[:600], 6)[0], 6

    report = compare(window(stream, 2), window(stream, 3, transform=first_600))
    assert not report.suspect, report.render()
    assert "too few events to judge" in report.verdict
    assert report.verdict.startswith("OK (too few events to judge: 600 accepted events in this")
    assert not any(check.judged for check in report.checks)
    assert report.check("rating_mean").value < -0.3  # reported all the same
    assert "not judged" in report.render()


def test_a_collapse_is_judged_however_small_the_window(stream: Stream) -> None:
    """A whole day with 1% of the traffic is below min_events, and that is the point. Its
    few users' sessions span less than min_hours: measured from the parent's end, it is a
    day's worth of (missing) traffic all the same."""

    def one_in_100(frame: pd.DataFrame, rejected: int) -> tuple[pd.DataFrame, int]:
        return frame[frame["user_id"] % 100 == 0], rejected // 100

    previous, collapsed = window(stream, 2), window(stream, 3, transform=one_in_100)
    assert collapsed.events < DriftBounds().min_events
    assert collapsed.hours < DriftBounds().min_hours < drift.exposure(previous, collapsed)
    report = compare(previous, collapsed)
    assert report.suspect
    assert report.verdict.startswith("SUSPECT: event volume fell to 0.0")
    assert {check.name for check in report.failed} == {"volume", "rating_volume"}


def test_everything_rejected(stream: Stream) -> None:
    """No accepted event at all, 5,000 rejected lines: the rejects check still fires."""
    empty = profile(journal_frame([]), 5000, {1, 2}, {"heat+1995"})
    report = compare(window(stream, 2), empty)
    assert {check.name for check in report.failed} == {"rejected_share"}
    assert report.verdict.startswith("SUSPECT: rejected share rose 0.99")


# --- serialisation and configuration --------------------------------------------------


def test_report_and_profile_round_trip_through_json(stream: Stream) -> None:
    report = compare(window(stream, 2), window(stream, 3, transform=ratings_down))
    data = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert data["suspect"] is True
    assert data["verdict"] == report.verdict
    again = DriftReport.from_dict(data)
    assert again == report
    assert again.render() == report.render()
    assert report.render().isascii()
    current = json.loads(json.dumps(report.current.as_dict(), allow_nan=False))
    assert Profile.from_dict(current) == report.current


def test_profiles_from_older_manifests_still_compare() -> None:
    """A manifest written before a field existed (or by the first stub) loads and compares."""
    old = Profile.from_dict({"events": 12, "no_such_field": 1})
    assert old.events == 12
    report = compare(old, profile(journal_frame([]), 0, set(), set()))
    assert not report.suspect
    assert report.render().startswith("OK (too few events to judge")


def test_bounds_from_env() -> None:
    assert DriftBounds.from_env({}) == DriftBounds()
    bounds = DriftBounds.from_env(
        {"DRIFT_MIN_EVENTS": "50", "DRIFT_RATING_MEAN": "0.5", "DRIFT_NEW_USERS": " ", "X": "1"}
    )
    assert (bounds.min_events, bounds.rating_mean) == (50, 0.5)
    assert bounds.new_users == DriftBounds().new_users
    with pytest.raises(ValueError, match=r"DRIFT_MIN_EVENTS='1\.5': expected an integer"):
        DriftBounds.from_env({"DRIFT_MIN_EVENTS": "1.5"})
    with pytest.raises(ValueError, match="DRIFT_VOLUME_FACTOR"):
        DriftBounds.from_env({"DRIFT_VOLUME_FACTOR": "0.5"})
    with pytest.raises(ValueError, match="DRIFT_RATING_HISTOGRAM"):
        DriftBounds.from_env({"DRIFT_RATING_HISTOGRAM": "-1"})
    # Every field has a documented variable.
    for name in DriftBounds.__dataclass_fields__:
        assert f"DRIFT_{name.upper()}" in drift.__doc__


def test_bounds_are_configurable(stream: Stream) -> None:
    previous, shifted = window(stream, 2), window(stream, 3, transform=watch_halved)
    loose = replace(DriftBounds(), watch_factor=2.5)
    assert not compare(previous, shifted, loose).suspect


# --- any frame at all -----------------------------------------------------------------

MOVIES = ["heat+1995", "alien+1979", "up+2009"]
_rows = st.lists(
    st.tuples(
        st.sampled_from(drift.KINDS),
        st.none() | st.datetimes(min_value=START, max_value=START + 3 * DAY),
        st.none() | st.integers(1, 6),
        st.none() | st.sampled_from(MOVIES),
        st.none() | st.integers(0, 4),  # minute
        st.none() | st.integers(0, 7),  # rating, some off the 1..5 scale
    ),
    max_size=25,
)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    names = ("kind", "time", "user_id", "movie_id", "minute", "rating")
    return journal_frame(
        [
            {"partition": 0, "offset": offset, **dict(zip(names, row, strict=True))}
            for offset, row in enumerate(rows)
        ]
    )


_windows = st.tuples(_rows, st.integers(0, 20))  # accepted events, rejected lines


@settings(max_examples=120, deadline=None)
@given(_windows, _windows, st.tuples(st.sets(st.integers(1, 6)), st.sets(st.sampled_from(MOVIES))))
def test_compare_never_crashes_and_is_symmetric(
    one: tuple[list[tuple], int], two: tuple[list[tuple], int], known: tuple[set, set]
) -> None:
    users, movies = known
    a = profile(_frame(one[0]), one[1], users, movies)
    b = profile(_frame(two[0]), two[1], pd.Index(sorted(users)), list(movies))
    eager = DriftBounds(min_events=0, min_ratings=0, min_sample=0, min_hours=0)
    for bounds in (DriftBounds(), eager):
        assert not compare(a, a, bounds).suspect
        forth, back = compare(a, b, bounds), compare(b, a, bounds)
        if bounds == DriftBounds():
            assert not forth.suspect  # a few dozen events never block training
        # Which window came first matters to the volume checks (the current one's hours
        # run from the parent's end), so they are symmetric only without that.
        a0, b0 = replace(a, span_end=None), replace(b, span_end=None)
        pairs = zip(compare(a0, b0, bounds).checks, compare(b0, a0, bounds).checks, strict=True)
        for x, y in pairs:
            assert x.name == y.name
            if x.name != "rejected_share":  # only a rise is suspicious
                assert (x.judged, x.ok) == (y.judged, y.ok), (x, y)
        for x, y in zip(forth.checks, back.checks, strict=True):
            if x.name not in ("rejected_share", "volume", "rating_volume"):
                assert (x.judged, x.ok) == (y.judged, y.ok), (x, y)
        data = json.loads(json.dumps(forth.as_dict(), allow_nan=False))
        assert DriftReport.from_dict(data) == forth
        text = forth.render()
        assert text.isascii()
        assert text.splitlines()[0] == forth.verdict
    for p in (a, b):
        assert Profile.from_dict(json.loads(json.dumps(p.as_dict(), allow_nan=False))) == p
        assert sum(p.events_by_kind.values()) == p.events
        assert p.new_users <= p.users and p.new_movies <= p.movies
        assert p.watchers <= p.watched_pairs <= p.watch_minutes
