"""Distribution drift: does what a snapshot adds look like what its parent added?

A snapshot covers the whole journal, so comparing snapshots would compare mostly the same
events. What is compared is each snapshot's *window*: the journal events beyond its
parent's offsets. ``profile()`` summarises a window into a small JSON-able ``Profile``
(stored in the manifest); ``compare()`` checks the current window's profile against the
parent's and returns a ``DriftReport``: one ``Check`` per statistic, ``suspect`` when any
fails, ``render()`` for people (``drift.md``), ``as_dict()`` for the manifest.

The checks (value compared; allowed by default):

| check               | value                                                  | bound (default) |
|---------------------|--------------------------------------------------------|-----------------|
| `volume`            | accepted events per stream hour (*), cur / prev        | 0.2x .. 5x      |
| `rating_volume`     | ratings per stream hour (*), cur / prev                | 0.2x .. 5x      |
| `rating_mean`       | mean star rating, cur - prev                           | +/-0.3 stars    |
| `rating_histogram`  | total-variation distance of the star shares            | <= 0.15         |
| `new_users`         | share of the window's users never seen before, diff    | +/-0.25         |
| `new_movies`        | share of rated/watched movies never seen before, diff  | +/-0.25         |
| `watch_minutes`     | distinct minutes watched per user and day, cur / prev  | 0.67x .. 1.5x   |
| `minutes_per_watch` | distinct minutes per (user, movie) watched, cur / prev | 0.67x .. 1.5x   |
| `rejected_share`    | rejected / all lines, cur - prev (a rise only)         | <= +0.05        |

Bounds come from the environment (``DriftBounds.from_env``, called by ``ingest/settings.py``):

| variable                | default | meaning                                                      |
|-------------------------|---------|--------------------------------------------------------------|
| DRIFT_MIN_EVENTS        | 1000    | accepted events each window needs for the distribution checks|
| DRIFT_MIN_RATINGS       | 300     | ratings each window needs for the rating mean and histogram  |
| DRIFT_MIN_SAMPLE        | 200     | users / movies / watcher-days / watches per window, likewise |
| DRIFT_MIN_HOURS         | 20      | stream hours both windows must span for the volume checks    |
| DRIFT_VOLUME_FACTOR     | 5       | events (and ratings) per hour may change by this factor      |
| DRIFT_RATING_MEAN       | 0.3     | largest shift of the mean rating, in stars                   |
| DRIFT_RATING_HISTOGRAM  | 0.15    | largest total-variation distance of the star shares          |
| DRIFT_NEW_USERS         | 0.25    | largest change of the share of new users (absolute)          |
| DRIFT_NEW_MOVIES        | 0.25    | largest change of the share of new movies (absolute)         |
| DRIFT_WATCH_FACTOR      | 1.5     | watch minutes per watcher-day / per watch may change by this |
| DRIFT_REJECTED_RISE     | 0.05    | largest rise of the rejected share (absolute)                |

Why the statistics are what they are: windows differ in length (the first snapshot holds
the whole backlog, later ones a day or an hour), so every checked statistic is one that does
not grow with the window: volume is *per hour of stream time* (event times, not wall clock,
so a consumer catching up on a backlog is not a "surge"), watch minutes are *per watcher
and day* (``minutes_per_watcher``, per watcher over the whole window, is kept in the
profile for people but not checked). A window's span is measured between the 0.5% and 99.5%
quantiles of its event times (scaled back up), so a few late or skewed timestamps cannot
stretch it. (*) The current window's hours are its own span or, where longer, the time
from the parent's (robust) end to its own: a dying stream's last few events, bunched in an
hour of an otherwise silent day, are a day of traffic, not an hour of it.

When a window is too small to judge: a statistic from a few hundred events is mostly noise,
and marking such a snapshot suspect would block training for nothing. So the distribution
checks (ratings, new users and movies, watch minutes) are only *judged* when both windows
hold at least ``min_events`` accepted events and enough of the units the statistic averages
over (``min_ratings`` ratings, ``min_sample`` users, movies, watcher-days or watches);
otherwise they are reported, marked not judged, and cannot fail. The verdict then says
"too few events to judge". The volume and rejects checks are the exception, on purpose:
a window that is small *because* the stream collapsed (or because everything was rejected)
is exactly what they exist to catch. Volume is judged whenever both windows span at least
``min_hours`` of stream time (shorter windows are dominated by the time of day) and either
holds ``min_events`` events; the rejected share whenever the current window has
``min_events`` lines. A parent at the start of the stream (nothing known before it: all its
users were new) gives no baseline for the new-user and new-movie shares, which are then not
judged either.

Ratio checks are symmetric (``|log(cur / prev)| <= log(factor)``), as are the shift and
distance checks: swapping two windows gives the same verdicts, except for the rejected share
(only a rise is suspicious) and the volume checks' hours (measured from the parent's end).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from contracts.env import FromEnv, float_at_least, non_negative_float, non_negative_int, var

KINDS = ("watch", "rate", "recommendation", "account")
SPAN_QUANTILE = 0.005  # stream-time span: between these quantiles of event time, scaled up
_US_PER_HOUR = 3_600_000_000


# --- bounds ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftBounds(FromEnv):
    """How far a window may move from its parent's before the snapshot is suspect."""

    # Accepted events each window needs before its distributions are judged: below that a
    # rating mean or a share of new users is mostly sampling noise.
    min_events: int = var("DRIFT_MIN_EVENTS", non_negative_int, 1000)
    # Ratings each window needs for the rating mean and histogram. Stars have a standard
    # deviation of about 1.2, so with 300 ratings on each side the difference of two means
    # has a standard error of about 0.1: the 0.3 bound is three of them.
    min_ratings: int = var("DRIFT_MIN_RATINGS", non_negative_int, 300)
    # Users, movies, watcher-days or watched (user, movie) pairs each window needs for the
    # checks that average over them. A share's difference from 200 on each side has a
    # standard error of at most 0.05: the 0.25 bound is five of them.
    min_sample: int = var("DRIFT_MIN_SAMPLE", non_negative_int, 200)
    # Stream hours both windows must span for the volume checks. Traffic follows the time of
    # day (evening is several times the night): shorter windows cannot be compared per hour.
    min_hours: float = var("DRIFT_MIN_HOURS", non_negative_float, 20.0)
    # Events and ratings per stream hour may grow or shrink by this factor. Day-to-day and
    # weekday swings are well within 2x; 5x is a lost partition, a stuck producer, a flood.
    volume_factor: float = var("DRIFT_VOLUME_FACTOR", float_at_least(1.0), 5.0)
    # The mean star rating may shift this much (stars, on the snapshot's scale). A service's
    # mean rating moves by hundredths from day to day; 0.3 is a different population or a
    # client sending a different scale.
    rating_mean: float = var("DRIFT_RATING_MEAN", non_negative_float, 0.3)
    # Total-variation distance between the star shares (half the sum of absolute share
    # differences: the share of ratings that would have to move). Catches a changed shape at
    # an unchanged mean, e.g. polarised 1s and 5s replacing 3s.
    rating_histogram: float = var("DRIFT_RATING_HISTOGRAM", non_negative_float, 0.15)
    # Share of the window's users (and, below, of its rated/watched movies) never seen
    # before may change by this much, absolute: a bot flood, a re-keyed user ID, a catalog
    # reload. The share falls as history grows, fastest in a young stream (the simulator's
    # by about 0.15 a day in its first days): within 0.25.
    new_users: float = var("DRIFT_NEW_USERS", non_negative_float, 0.25)
    new_movies: float = var("DRIFT_NEW_MOVIES", non_negative_float, 0.25)
    # Distinct watch minutes per watcher-day and per (user, movie) may change by this
    # factor: the player logging one line per two minutes, sessions cut short.
    watch_factor: float = var("DRIFT_WATCH_FACTOR", float_at_least(1.0), 1.5)
    # The share of rejected lines may rise this much (absolute; a fall is good news): a
    # producer changed its format, and what still parses may be a biased remainder.
    rejected_rise: float = var("DRIFT_REJECTED_RISE", non_negative_float, 0.05)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{_env_name(f.name)}={value!r}: expected a number >= 0")
        for name in ("volume_factor", "watch_factor"):
            if getattr(self, name) < 1:
                raise ValueError(f"{_env_name(name)}={getattr(self, name)!r}: expected >= 1")


def _env_name(name: str) -> str:
    return f"DRIFT_{name.upper()}"


# --- profiles -------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """What one window of the journal looked like. Plain JSON types only (no NaN: None)."""

    events: int = 0  # accepted events
    events_by_kind: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    rejected_share: float | None = None  # of all lines, accepted and rejected
    start: str | None = None  # first and last event time, ISO-8601
    end: str | None = None
    hours: float = 0.0  # stream-time span (robust: see SPAN_QUANTILE)
    span_end: str | None = None  # where the window's traffic ends (robust), ISO-8601
    events_per_hour: float | None = None
    ratings: int = 0
    ratings_per_hour: float | None = None
    scale_high: int = 5
    rating_mean: float | None = None
    rating_std: float | None = None
    rating_histogram: dict[str, float] = field(default_factory=dict)  # star -> share
    users: int = 0  # distinct users with any accepted event
    known_users: int = 0  # users known before the window
    new_users: int = 0
    new_user_share: float | None = None
    movies: int = 0  # distinct movies rated or watched
    known_movies: int = 0
    new_movies: int = 0
    new_movie_share: float | None = None
    watchers: int = 0  # distinct users who watched
    watch_minutes: int = 0  # distinct (user, movie, minute)
    minutes_per_watcher: float | None = None  # over the whole window: grows with its length
    watcher_days: int = 0  # distinct (user, day) with a watch
    minutes_per_watcher_day: float | None = None
    watched_pairs: int = 0  # distinct (user, movie) watched
    minutes_per_watch: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Profile:
        """Inverse of ``as_dict``; unknown keys are ignored, missing ones take defaults
        (so profiles written by older or newer code still load)."""
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items() if k in names
        }
        return cls(**values)


def profile(
    events: pd.DataFrame,
    rejected: int,
    known_users: Collection,
    known_movies: Collection,
    scale_high: int = 5,
) -> Profile:
    """Summarise a window: its accepted events (the ``JOURNAL`` columns), how many lines
    it rejected, and the user and movie IDs known before it (sets, arrays or indexes)."""
    count = len(events)
    kinds = events["kind"]
    by_kind = dict.fromkeys(KINDS, 0)
    for kind, n in kinds.value_counts().items():
        by_kind[str(kind)] = int(n)
    rejected = int(rejected)
    lines = count + rejected
    ticks, timed = _ticks(events["time"])
    start, end, span_end, hours = _span(ticks[timed])

    def per_hour(n: int) -> float | None:
        return n / hours if hours > 0 else None

    def ratio(n: float, d: float) -> float | None:
        return float(n / d) if d else None

    stars = pd.to_numeric(events.loc[kinds == "rate", "rating"], errors="coerce").dropna()
    stars = np.rint(stars.to_numpy(dtype=np.float64)).astype(np.int64)
    histogram: dict[str, float] = {}
    if len(stars):
        counts = pd.Series(stars).value_counts()
        for star in sorted({*range(1, scale_high + 1), *counts.index.tolist()}):
            histogram[str(star)] = float(counts.get(star, 0) / len(stars))

    # Integer codes once, then distinct counts of int64 keys: cheap on millions of rows.
    user_codes, user_uniques = pd.factorize(events["user_id"])  # null: -1
    movie_codes, movie_uniques = pd.factorize(events["movie_id"])
    users = user_uniques.to_numpy()
    new_users = len(users) - _count_known(users, known_users)
    touched = kinds.isin(["rate", "watch"]).to_numpy() & (movie_codes >= 0)
    movies = movie_uniques.to_numpy()[pd.unique(movie_codes[touched])]
    new_movies = len(movies) - _count_known(movies, known_movies)

    minute = pd.to_numeric(events["minute"], errors="coerce").to_numpy(dtype=np.float64)
    watch = (kinds == "watch").to_numpy() & (user_codes >= 0) & (movie_codes >= 0)
    watch &= ~np.isnan(minute)
    user_w = user_codes[watch].astype(np.int64)
    pair_codes, pairs = pd.factorize(user_w * (len(movie_uniques) + 1) + movie_codes[watch])
    minute_codes, minutes = pd.factorize(minute[watch])
    watch_minutes = len(pd.unique(pair_codes.astype(np.int64) * len(minutes) + minute_codes))
    watched_pairs = len(pairs)
    watchers = len(pd.unique(user_w))
    day_codes, days = pd.factorize(ticks[watch] // (24 * _US_PER_HOUR))  # NaT: a day of its own
    watcher_days = len(pd.unique(user_w * (len(days) + 1) + day_codes))

    return Profile(
        events=count,
        events_by_kind=by_kind,
        rejected=rejected,
        rejected_share=ratio(rejected, lines),
        start=start,
        end=end,
        hours=hours,
        span_end=span_end,
        events_per_hour=per_hour(count),
        ratings=len(stars),
        ratings_per_hour=per_hour(len(stars)),
        scale_high=int(scale_high),
        rating_mean=float(stars.mean()) if len(stars) else None,
        rating_std=float(stars.std()) if len(stars) else None,
        rating_histogram=histogram,
        users=len(users),
        known_users=len(known_users),
        new_users=new_users,
        new_user_share=ratio(new_users, len(users)),
        movies=len(movies),
        known_movies=len(known_movies),
        new_movies=new_movies,
        new_movie_share=ratio(new_movies, len(movies)),
        watchers=watchers,
        watch_minutes=watch_minutes,
        minutes_per_watcher=ratio(watch_minutes, watchers),
        watcher_days=watcher_days,
        minutes_per_watcher_day=ratio(watch_minutes, watcher_days),
        watched_pairs=watched_pairs,
        minutes_per_watch=ratio(watch_minutes, watched_pairs),
    )


def _ticks(times: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Event times as int64 microseconds (NaT: int64 min) and which are not NaT."""
    us = pd.to_datetime(times, errors="coerce").to_numpy().astype("datetime64[us]")
    return us.view(np.int64), ~np.isnat(us)


def _span(ticks: np.ndarray) -> tuple[str | None, str | None, str | None, float]:
    """First and last event time, the robust end (ISO) and the robust span in hours."""
    if not len(ticks):
        return None, None, None, 0.0
    first, last = (_iso(t) for t in (ticks.min(), ticks.max()))
    if len(ticks) < 2:
        return first, last, last, 0.0
    lo, hi = np.quantile(ticks, [SPAN_QUANTILE, 1 - SPAN_QUANTILE])
    hours = float((hi - lo) / (1 - 2 * SPAN_QUANTILE) / _US_PER_HOUR)
    return first, last, _iso(round(hi)), hours


def _iso(us: float) -> str:
    return pd.Timestamp(int(us), unit="us").isoformat()


def exposure(previous: Profile, current: Profile) -> float:
    """Stream hours the current window covers: its own span, or the time since the
    parent's traffic ended where that is longer. A few events bunched together after a
    long quiet stretch are a collapse, not a short window."""
    hours = current.hours
    if previous.span_end and current.span_end:
        since = pd.Timestamp(current.span_end) - pd.Timestamp(previous.span_end)
        hours = max(hours, since.total_seconds() / 3600)
    return hours


def _count_known(values: np.ndarray, known: Collection) -> int:
    """How many of ``values`` (distinct) are in ``known``: probes a set with the (few)
    window values rather than hashing the (many) known ones."""
    if not len(values) or not len(known):
        return 0
    if isinstance(known, set | frozenset | dict):
        return sum(1 for value in values.tolist() if value in known)
    return int(pd.Index(values).isin(pd.Index(known)).sum())


# --- checks and the report ------------------------------------------------------------

# name -> (label, how value compares, how previous/current read)
_SPECS = {
    "volume": ("event volume", "ratio", "per_hour"),
    "rating_volume": ("rating volume", "ratio", "per_hour"),
    "rating_mean": ("rating mean", "shift", "stars"),
    "rating_histogram": ("rating histogram", "distance", "share"),
    "new_users": ("share of new users", "shift", "share"),
    "new_movies": ("share of new movies", "shift", "share"),
    "watch_minutes": ("watch minutes per watcher-day", "ratio", "number"),
    "minutes_per_watch": ("minutes per movie watched", "ratio", "number"),
    "rejected_share": ("rejected share", "rise", "share"),
}


@dataclass(frozen=True)
class Check:
    """One statistic, previous window against current.

    ``value`` is what is bounded: a ratio (current / previous), a shift or rise (current -
    previous) or a distance; ``None`` when it does not exist (a rise from zero). ``bound``
    is the allowed ``(low, high)`` for it, ``None`` for an open side. ``ok`` is False only
    for a judged check out of bounds; ``judged`` is False when the windows were too small
    (``note`` says why).
    """

    name: str
    previous: float | None
    current: float | None
    value: float | None
    bound: tuple[float | None, float | None]
    ok: bool
    note: str = ""
    judged: bool = True

    @property
    def label(self) -> str:
        return _SPECS.get(self.name, (self.name, "", ""))[0]

    @property
    def failed(self) -> bool:
        return not self.ok

    def summary(self) -> str:
        """One phrase: 'rating mean fell 1.20 stars (3.61 -> 2.41; bound +/-0.3)'."""
        _, how, unit = _SPECS.get(self.name, (self.name, "", "number"))
        moved = f"{_fmt(self.previous, unit)} -> {_fmt(self.current, unit)}"
        bound = _fmt_bound(self.bound, how)
        value = self.value
        if how == "ratio":
            if value is None:
                return f"{self.label} rose from zero ({moved}; bound {bound})"
            verb = "fell to" if value < 1 else "rose to"
            return f"{self.label} {verb} {value:.2f}x ({moved}; bound {bound})"
        if how == "distance":
            return f"{self.label} moved {_num(value)} ({self.note or moved}; bound {bound})"
        if value is None:
            return f"{self.label}: no value ({moved})"
        verb = "fell" if value < 0 else "rose"
        stars = " stars" if unit == "stars" else ""
        size = f"{abs(value):.3f}" if abs(value) < 0.1 else f"{abs(value):.2f}"
        return f"{self.label} {verb} {size}{stars} ({moved}; bound {bound})"


@dataclass(frozen=True)
class DriftReport:
    """The checks of one window against its parent's; suspect when any judged check fails."""

    previous: Profile
    current: Profile
    checks: tuple[Check, ...]
    min_events: int = DriftBounds.min_events

    @property
    def suspect(self) -> bool:
        return any(not check.ok for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def too_few_events(self) -> bool:
        return min(self.previous.events, self.current.events) < self.min_events

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)

    @property
    def verdict(self) -> str:
        """The first line of the report: 'SUSPECT: <what failed>' or 'OK ...'."""
        if self.suspect:
            return "SUSPECT: " + "; ".join(check.summary() for check in self.failed)
        if self.too_few_events:
            which = "this" if self.current.events < self.min_events else "the parent's"
            small = min(self.previous.events, self.current.events)
            labels = [check.label for check in self.checks if check.judged]
            checked = f"{', '.join(labels)} within bounds" if labels else "no check judged"
            return (
                f"OK (too few events to judge: {small:,} accepted events in {which} window, "
                f"{self.min_events:,} needed; {checked})"
            )
        judged = sum(check.judged for check in self.checks)
        skipped = len(self.checks) - judged
        tail = f"; {skipped} not judged (see notes)" if skipped else ""
        return f"OK: {judged} checks within bounds{tail}"

    def as_dict(self) -> dict:
        return {
            "suspect": self.suspect,
            "verdict": self.verdict,
            "min_events": self.min_events,
            "checks": [{**asdict(check), "bound": list(check.bound)} for check in self.checks],
            "previous": self.previous.as_dict(),
            "current": self.current.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> DriftReport:
        """Inverse of ``as_dict`` (``suspect`` and ``verdict`` are recomputed)."""
        return cls(
            previous=Profile.from_dict(data.get("previous", {})),
            current=Profile.from_dict(data.get("current", {})),
            checks=tuple(
                Check(**{**check, "bound": tuple(check["bound"])})
                for check in data.get("checks", ())
            ),
            min_events=data.get("min_events", DriftBounds.min_events),
        )

    def render(self) -> str:
        """The report as Markdown (ASCII only): verdict, checks table, windows, notes."""
        rows = [
            self.verdict,
            "",
            "| check | previous | current | change | bound | result |",
            "|---|---|---|---|---|---|",
        ]
        for check in self.checks:
            _, how, unit = _SPECS.get(check.name, (check.name, "", "number"))
            result = "FAIL" if not check.ok else ("ok" if check.judged else "not judged")
            rows.append(
                f"| {check.label} | {_fmt(check.previous, unit)} | {_fmt(check.current, unit)} "
                f"| {_fmt_value(check.value, how)} | {_fmt_bound(check.bound, how)} | {result} |"
            )
        p, c = self.previous, self.current
        rows += [
            "",
            "| window | previous | current |",
            "|---|---|---|",
            f"| stream time | {_window(p)} | {_window(c)} |",
            f"| accepted events | {_kinds(p)} | {_kinds(c)} |",
            f"| rejected lines | {_with_share(p.rejected, p.rejected_share)} "
            f"| {_with_share(c.rejected, c.rejected_share)} |",
            f"| users | {_with_share(p.users, p.new_user_share, 'new')} "
            f"| {_with_share(c.users, c.new_user_share, 'new')} |",
            f"| movies rated or watched | {_with_share(p.movies, p.new_movie_share, 'new')} "
            f"| {_with_share(c.movies, c.new_movie_share, 'new')} |",
            f"| ratings | {_ratings(p)} | {_ratings(c)} |",
            f"| watch minutes | {_watching(p)} | {_watching(c)} |",
        ]
        notes = [f"- {check.label}: {check.note}" for check in self.checks if check.note]
        if notes:
            rows += ["", "Notes:", "", *notes]
        return "\n".join(rows) + "\n"


def compare(previous: Profile, current: Profile, bounds: DriftBounds | None = None) -> DriftReport:
    """Check the current window's profile against the previous (the parent's) one."""
    b = bounds or DriftBounds()
    p, c = previous, current
    hours = exposure(p, c)  # the current window's stream hours, for its rates
    small = min(p.events, c.events)
    too_few = (
        f"too few events to judge ({small:,} in a window, {b.min_events:,} needed)"
        if small < b.min_events
        else ""
    )

    def per_hour(n: int) -> float | None:
        return n / hours if hours > 0 else None

    def span(prev_count: int, cur_count: int, need: int, units: str) -> str:
        """Why a volume check is not judged ('' when it is)."""
        if min(p.hours, hours) < b.min_hours:
            return (
                f"a window spans under {b.min_hours:g} stream hours "
                f"({p.hours:.1f} h previous, {hours:.1f} h current): time of day dominates"
            )
        if max(prev_count, cur_count) < need:
            return f"too few {units} in both windows ({need:,} needed in one)"
        return ""

    def sample(units: str, prev: int, cur: int, need: int) -> str:
        """Why a distribution check is not judged ('' when it is)."""
        if too_few:
            return too_few
        if min(prev, cur) < need:
            return f"too few {units} ({prev:,} previous, {cur:,} current; {need:,} needed)"
        return ""

    def history(known_prev: int, known_cur: int, things: str) -> str:
        if not known_prev or not known_cur:
            return f"no {things} known before a window (the start of the stream): all were new"
        return ""

    ratings_skip = sample("ratings", p.ratings, c.ratings, b.min_ratings)
    checks = (
        _ratio(
            "volume",
            p.events_per_hour,
            per_hour(c.events),
            b.volume_factor,
            span(p.events, c.events, b.min_events, "events"),
        ),
        _ratio(
            "rating_volume",
            p.ratings_per_hour,
            per_hour(c.ratings),
            b.volume_factor,
            span(p.ratings, c.ratings, b.min_ratings, "ratings"),
        ),
        _shift("rating_mean", p.rating_mean, c.rating_mean, b.rating_mean, ratings_skip),
        _histogram(p, c, b.rating_histogram, ratings_skip),
        _shift(
            "new_users",
            p.new_user_share,
            c.new_user_share,
            b.new_users,
            sample("users", p.users, c.users, b.min_sample)
            or history(p.known_users, c.known_users, "users"),
        ),
        _shift(
            "new_movies",
            p.new_movie_share,
            c.new_movie_share,
            b.new_movies,
            sample("movies", p.movies, c.movies, b.min_sample)
            or history(p.known_movies, c.known_movies, "movies"),
        ),
        _ratio(
            "watch_minutes",
            p.minutes_per_watcher_day,
            c.minutes_per_watcher_day,
            b.watch_factor,
            sample("watcher-days", p.watcher_days, c.watcher_days, b.min_sample),
        ),
        _ratio(
            "minutes_per_watch",
            p.minutes_per_watch,
            c.minutes_per_watch,
            b.watch_factor,
            sample("watched movies", p.watched_pairs, c.watched_pairs, b.min_sample),
        ),
        _rise(p, c, b),
    )
    return DriftReport(p, c, checks, b.min_events)


def _ratio(name: str, prev: float | None, cur: float | None, factor: float, skip: str) -> Check:
    """current / previous within [1/factor, factor], tested as |log ratio| <= log factor
    so that swapping the windows gives exactly the same answer."""
    bound = (1 / factor, factor)
    if prev is None or cur is None:
        return Check(name, prev, cur, None, bound, True, skip or "no data in a window", False)
    if prev == 0 or cur == 0:
        value = None if prev == 0 and cur else (1.0 if prev == cur else 0.0)
        within = prev == cur
    else:
        value = cur / prev
        within = abs(math.log(cur) - math.log(prev)) <= math.log(factor)
    if skip:
        return Check(name, prev, cur, value, bound, True, f"not judged: {skip}", False)
    return Check(name, prev, cur, value, bound, within)


def _shift(name: str, prev: float | None, cur: float | None, limit: float, skip: str) -> Check:
    bound = (-limit, limit)
    if prev is None or cur is None:
        return Check(name, prev, cur, None, bound, True, skip or "no data in a window", False)
    value = cur - prev
    if skip:
        return Check(name, prev, cur, value, bound, True, f"not judged: {skip}", False)
    return Check(name, prev, cur, value, bound, abs(value) <= limit)


def _histogram(p: Profile, c: Profile, limit: float, skip: str) -> Check:
    """Total-variation distance; previous/current are the shares of the star that moved
    most, which the note names."""
    name, bound = "rating_histogram", (0.0, limit)
    hp, hc = p.rating_histogram, c.rating_histogram
    if not hp or not hc:
        return Check(name, None, None, None, bound, True, skip or "no ratings in a window", False)
    stars = sorted({*hp, *hc}, key=lambda s: (len(s), s))
    moves = [abs(hc.get(s, 0.0) - hp.get(s, 0.0)) for s in stars]
    value = 0.5 * sum(moves)
    star = stars[int(np.argmax(moves))]
    prev, cur = hp.get(star, 0.0), hc.get(star, 0.0)
    note = f"{star} stars: {prev:.1%} -> {cur:.1%}"
    if skip:
        return Check(name, prev, cur, value, bound, True, f"not judged: {skip}; {note}", False)
    return Check(name, prev, cur, value, bound, value <= limit, note)


def _rise(p: Profile, c: Profile, b: DriftBounds) -> Check:
    name, bound = "rejected_share", (None, b.rejected_rise)
    prev, cur = p.rejected_share, c.rejected_share
    if prev is None or cur is None:
        return Check(name, prev, cur, None, bound, True, "no lines in a window", False)
    value = cur - prev
    lines = c.events + c.rejected
    if lines < b.min_events:
        skip = f"not judged: too few lines ({lines:,} in this window, {b.min_events:,} needed)"
        return Check(name, prev, cur, value, bound, True, skip, False)
    return Check(name, prev, cur, value, bound, value <= b.rejected_rise)


# --- formatting -----------------------------------------------------------------------


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def _fmt(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if unit == "per_hour":
        return f"{_num(x)}/h"
    if unit == "stars":
        return f"{x:.2f}"
    if unit == "share":
        return f"{x:.1%}"
    return _num(x)


def _fmt_value(x: float | None, how: str) -> str:
    if x is None:
        return "from 0" if how == "ratio" else "-"
    if how == "ratio":
        return f"{x:.2f}x"
    if how in ("shift", "rise"):
        return f"{x:+.3f}" if abs(x) < 0.1 else f"{x:+.2f}"
    return f"{x:.2f}"


def _fmt_bound(bound: tuple[float | None, float | None], how: str) -> str:
    low, high = bound
    if how == "ratio" and low is not None and high is not None:
        return f"{low:.2g}x .. {high:.2g}x"
    if how == "shift" and high is not None:
        return f"+/-{high:g}"
    if how == "rise" and high is not None:
        return f"<= +{high:g}"
    if high is not None:
        return f"<= {high:g}"
    return "-"


def _window(p: Profile) -> str:
    if p.start is None:
        return "-"
    return f"{p.start[:16]} .. {(p.end or '')[:16]} ({p.hours:.1f} h)"


def _kinds(p: Profile) -> str:
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in p.events_by_kind.items() if n)
    return f"{p.events:,} ({kinds})" if kinds else f"{p.events:,}"


def _with_share(n: int, share: float | None, what: str = "") -> str:
    if share is None:
        return f"{n:,}"
    return f"{n:,} ({share:.1%}{' ' + what if what else ''})"


def _ratings(p: Profile) -> str:
    if not p.ratings or p.rating_mean is None:
        return f"{p.ratings:,}"
    return f"{p.ratings:,}, mean {p.rating_mean:.2f} of {p.scale_high}"


def _watching(p: Profile) -> str:
    if not p.watchers:
        return "0"
    return f"{p.watch_minutes:,} by {p.watchers:,} watchers over {p.watcher_days:,} watcher-days"
