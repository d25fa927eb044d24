"""Traffic simulator: a seeded world of users and movies that writes the event stream.

The system has no real users on these machines, so the simulator stands in for them: every
user has a hidden taste vector, every movie a latent vector, a Zipf-like popularity and a
length, and ``World.affinity`` is the ground truth a recommender is judged against. Users
pick movies with probability proportional to ``exp(affinity / temperature) * popularity``,
watch more of what they like (one line per minute, as the real stream does), rate a third of
what they watched (stars follow a noisy affinity) and now and then re-rate, create an
account or get a recommendation. A small share of noise (duplicates, truncated lines,
garbage, unknown requests, bad ratings, bad user ids) keeps the consumer honest.

Lines are ``bytes`` everywhere (UTF-8, no trailing newline): the Kafka path sends bytes and
garbage noise is not valid UTF-8, so one type fits both. Contract lines are produced only by
``ingest.events.format_event``; only the deliberately malformed noise is built by hand.

``python -m simulator.traffic --help`` for the CLI; ``World``, ``simulate_lines``,
``write_lines`` and ``produce`` are the same thing as plain functions.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np

from contracts import locations
from ingest.events import Account, Event, Rate, Recommendation, Watch, format_event, format_time

DEFAULT_START = datetime(2025, 1, 1)
LATENT_DIM = 8
TEMPERATURE = 0.5  # lower: users follow their taste more, popularity less (see BENCHMARKS.md)
ZIPF_EXPONENT = 0.9
MAX_USER_ID_FACTOR = 100  # user ids are sparse, like a real service's: drawn from 1..100*users
SESSIONS_PER_DAY = 0.25  # a user's mean, before the lognormal activity spread
ACTIVITY_SIGMA = 1.0
# Share watched = sigmoid(slope * (affinity - midpoint) + noise): a movie a user picked has
# affinity ~1.6 on average, so most sessions stop early and the loved ones run to the end.
WATCH_SLOPE, WATCH_MIDPOINT, WATCH_NOISE = 1.6, 2.8, 1.2
RATE_SHARE = 0.35  # of watched movies get a rating
RERATE_SHARE = 0.08  # of ratings are changed later
ACCOUNT_SHARE = 0.3  # of users are new: a create_account line before their first event
RECOMMEND_SHARE = 0.15  # of sessions start with a recommendation request
RECOMMEND_FAIL_SHARE = 0.03
RECOMMEND_COUNT = 20
RECOMMEND_POOL = 200  # the popular movies a recommendation is drawn from
STAR_THRESHOLDS = (-0.5, 0.3, 1.0, 1.8)  # noisy affinity -> 1..5 stars
STAR_NOISE = 0.6
SERVERS = ("recsys-0.movies.local:8082", "recsys-1.movies.local:8082")
ERRORS = (
    "java.net.ConnectException: Connection refused (Connection refused)",
    "java.net.SocketTimeoutException: Read timed out",
    "500 Internal Server Error",
)

_US = 1_000_000  # microseconds per second: event times are int64 microseconds from start
_WATCH, _RATE, _RECO, _ACCOUNT = 0, 1, 2, 3  # concatenation order breaks time ties
KINDS = {_WATCH: "watch", _RATE: "rate", _RECO: "recommendation", _ACCOUNT: "account"}
NOISE_KINDS = {
    "duplicate": 0.30,
    "truncated": 0.20,
    "garbage": 0.15,
    "unknown_kind": 0.10,
    "bad_rating": 0.10,
    "bad_user": 0.15,
}
_UNKNOWN_REQUESTS = (
    "GET /logout",
    "GET /search?q={word}",
    "POST /rate/{movie}=4",
    "GET /data/t/{movie}/trailer.mp4",
    "DELETE /account",
    "GET /recommend",
)
_CHUNK = 65_536  # events turned into lines per numpy -> Python conversion

ADJECTIVES = (
    "dark", "silent", "last", "lost", "red", "golden", "broken", "hidden", "wild", "little",
    "final", "secret", "eternal", "frozen", "burning", "lonely", "crimson", "savage", "brave",
    "forgotten", "midnight", "electric", "velvet", "haunted", "blue", "iron", "sweet", "deadly",
    "endless", "quiet", "bright", "strange", "wicked", "gentle", "distant", "black", "white",
)  # fmt: skip
NOUNS = (
    "night", "river", "city", "heart", "road", "king", "queen", "storm", "shadow", "dream",
    "garden", "mountain", "star", "moon", "sea", "fire", "house", "island", "empire", "ghost",
    "detective", "summer", "winter", "train", "love", "war", "game", "machine", "girl", "boy",
    "hunter", "stranger", "kingdom", "planet", "bridge", "mirror", "witness", "voyage", "sky",
    "heist", "wolf", "dragon", "soldier", "song", "letter", "promise", "legacy", "circus",
)  # fmt: skip


# --- the world ------------------------------------------------------------------------


@dataclass(eq=False)
class World:
    """The hidden ground truth: who the users and movies are and who likes what.

    Arrays are aligned with ``user_ids`` (users) and ``movie_ids`` (movies).
    """

    seed: int
    movie_ids: list[str]
    popularity: np.ndarray  # sums to 1
    movie_vectors: np.ndarray  # (movies, LATENT_DIM)
    lengths: np.ndarray  # minutes, 80..180
    user_ids: np.ndarray  # positive, unique, ascending
    tastes: np.ndarray  # (users, LATENT_DIM)
    activity: np.ndarray  # mean sessions per day
    temperature: float = TEMPERATURE
    _user_index: dict[int, int] = field(init=False, repr=False)
    _movie_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._user_index = {user: i for i, user in enumerate(self.user_ids.tolist())}
        self._movie_index = {movie: i for i, movie in enumerate(self.movie_ids)}

    @classmethod
    def build(cls, users: int = 3000, movies: int = 2000, seed: int = 0) -> World:
        """A random world; the same arguments always give the same world."""
        if users < 1 or movies < 1:
            raise ValueError("a world needs at least one user and one movie")
        rng = np.random.default_rng([seed, 0])
        ranks = rng.permutation(movies)
        popularity = 1.0 / (ranks + 1.0) ** ZIPF_EXPONENT
        id_space = max(users * MAX_USER_ID_FACTOR, 1000)
        return cls(
            seed=seed,
            movie_ids=invent_movie_ids(movies, rng),
            popularity=popularity / popularity.sum(),
            # Variance 1/LATENT_DIM per coordinate against unit tastes: affinity ~ N(0, 1).
            movie_vectors=rng.normal(0.0, LATENT_DIM**-0.5, (movies, LATENT_DIM)),
            lengths=rng.integers(80, 181, movies),
            user_ids=np.sort(rng.choice(id_space, size=users, replace=False) + 1),
            tastes=rng.normal(0.0, 1.0, (users, LATENT_DIM)),
            activity=SESSIONS_PER_DAY
            * rng.lognormal(-(ACTIVITY_SIGMA**2) / 2, ACTIVITY_SIGMA, users),
        )

    def user_index(self, user_id: int) -> int:
        return self._user_index[user_id]

    def movie_index(self, movie_id: str) -> int:
        return self._movie_index[movie_id]

    def has_movie(self, movie_id: str) -> bool:
        return movie_id in self._movie_index

    def affinity(self, user_id: int, movie_id: str) -> float:
        """How much a user likes a movie (about N(0, 1) over all pairs): taste · movie vector."""
        taste = self.tastes[self.user_index(user_id)]
        return float(taste @ self.movie_vectors[self.movie_index(movie_id)])

    def affinities(self, user_id: int) -> np.ndarray:
        """A user's affinity to every movie, aligned with ``movie_ids``."""
        return self.movie_vectors @ self.tastes[self.user_index(user_id)]

    def choice_logits(self, affinities: np.ndarray) -> np.ndarray:
        """log of the unnormalised probability to pick a movie: exp(aff/T) * popularity."""
        return affinities / self.temperature + np.log(self.popularity)

    def interest(self, affinities: np.ndarray) -> np.ndarray:
        """How much a movie tempts a user on sight: affinity plus popularity's pull. It is
        ``choice_logits`` scaled by the temperature, shifted so an average-popularity movie
        gets no pull (used by the movie app, ``simulator.movieapp``)."""
        return affinities + self.temperature * np.log(self.popularity * len(self.popularity))

    @staticmethod
    def watch_fractions(affinities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Share of the film watched before stopping (0..1): higher for liked movies."""
        noise = rng.normal(0.0, WATCH_NOISE, len(affinities))
        noisy = WATCH_SLOPE * (affinities - WATCH_MIDPOINT) + noise
        return 1.0 / (1.0 + np.exp(-noisy))

    @staticmethod
    def stars(affinities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The 1..5 star rating a user gives: noisy affinity, quantised."""
        noisy = affinities + rng.normal(0.0, STAR_NOISE, len(affinities))
        return 1 + np.searchsorted(STAR_THRESHOLDS, noisy)

    def generate(
        self, days: float = 30.0, start: datetime = DEFAULT_START, noise: float = 0.01
    ) -> Iterator[tuple[str, bytes]]:
        """The stream as (kind, line) in time order; kinds are 'watch', 'rate',
        'recommendation', 'account' and 'noise:<what>'. Deterministic for a world and args."""
        rng = np.random.default_rng([self.seed, 1])
        events = _Events.simulate(self, rng, days)
        yield from _render(self, events, naive_utc(start), noise, rng)


def invent_movie_ids(count: int, rng: np.random.Generator) -> list[str]:
    """Unique plausible movie ids: 'the+silent+river+1987', 'dragon+of+the+moon+2+2014'.

    Years lean recent (1950..2025); a title taken in its year is drawn again, and after a
    few tries gets a part number, so any count terminates.
    """
    years = np.clip(2025 - np.floor(rng.exponential(18.0, count)), 1950, 2025).astype(int)
    slugs: list[str] = []
    taken: set[str] = set()
    for year in years.tolist():
        slug, tries = f"{_title(rng)}+{year}", 0
        while slug in taken:
            tries += 1
            part = f"+{rng.integers(2, 10 + tries)}" if tries > 10 else ""
            slug = f"{_title(rng)}{part}+{year}"
        taken.add(slug)
        slugs.append(slug)
    return slugs


def _title(rng: np.random.Generator) -> str:
    def pick(words: tuple[str, ...]) -> str:
        return words[rng.integers(len(words))]

    pattern = rng.integers(5)
    if pattern == 0:
        words = [pick(NOUNS)]
    elif pattern == 1:
        words = ["the", pick(ADJECTIVES), pick(NOUNS)]
    elif pattern == 2:
        words = [pick(NOUNS), "of", "the", pick(NOUNS)]
    elif pattern == 3:
        words = [pick(ADJECTIVES), pick(NOUNS)]
    else:
        words = ["the", pick(NOUNS)]
    if rng.random() < 0.08:
        words.append(str(rng.integers(2, 5)))  # a sequel
    return "+".join(words)


# --- events as arrays -----------------------------------------------------------------

_Columns = dict[str, np.ndarray]
_Request = tuple[str, int, tuple[str, ...], str | None]  # server, status, movies, error


@dataclass
class _Events:
    """Every clean event as parallel arrays, sorted by time (microseconds from start)."""

    kind: np.ndarray
    time_us: np.ndarray
    user: np.ndarray  # index into World.user_ids
    movie: np.ndarray  # index into World.movie_ids; -1 when none
    value: np.ndarray  # minute, stars or latency in ms
    reco: np.ndarray  # index into ``requests`` for a recommendation; -1 when none
    requests: list[_Request]

    @classmethod
    def simulate(cls, world: World, rng: np.random.Generator, days: float) -> _Events:
        sessions = _sessions(world, rng, days)
        reco_columns, requests = _recommendations(world, rng, sessions)
        # In this order, so that equal times keep account < request < watch < rating.
        parts = [
            _accounts(rng, sessions),
            reco_columns,
            _watches(sessions),
            _ratings(world, rng, sessions, days),
        ]
        merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        order = np.argsort(merged["time_us"], kind="stable")
        return cls(**{key: column[order] for key, column in merged.items()}, requests=requests)

    def __len__(self) -> int:
        return len(self.kind)


@dataclass
class _Sessions:
    """One row per movie a user watched: who, what, when it starts, where they stop."""

    user: np.ndarray
    movie: np.ndarray
    affinity: np.ndarray
    start_us: np.ndarray
    last_minute: np.ndarray


def _sessions(world: World, rng: np.random.Generator, days: float) -> _Sessions:
    movies = len(world.movie_ids)
    counts = np.minimum(rng.poisson(world.activity * days), movies)
    users, picks = [], []
    for row in np.flatnonzero(counts).tolist():
        logits = world.choice_logits(world.movie_vectors @ world.tastes[row])
        picks.append(_sample_without_replacement(logits, int(counts[row]), rng))
        users.append(np.full(counts[row], row))
    if not users:
        empty = np.zeros(0, np.int64)
        return _Sessions(empty, empty, np.zeros(0), empty, empty)
    user = np.concatenate(users)
    movie = np.concatenate(picks)
    affinity = np.einsum("ij,ij->i", world.tastes[user], world.movie_vectors[movie])
    lengths = world.lengths[movie]
    last_minute = np.minimum(
        (world.watch_fractions(affinity, rng) * lengths).astype(np.int64), lengths - 1
    )
    start_us = _session_starts(user, last_minute, rng, days)
    keep = start_us < int(days * 86_400 * _US)
    return _Sessions(user[keep], movie[keep], affinity[keep], start_us[keep], last_minute[keep])


def _sample_without_replacement(
    logits: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Gumbel top-k: the same as drawing one by one ∝ exp(logits) without putting back,
    in the order drawn (so a user's favourites tend to come first)."""
    keys = logits + rng.gumbel(size=len(logits))
    top = np.argpartition(-keys, count - 1)[:count] if count < len(keys) else np.arange(len(keys))
    return top[np.argsort(-keys[top])]


def _session_starts(
    user: np.ndarray, last_minute: np.ndarray, rng: np.random.Generator, days: float
) -> np.ndarray:
    """Evening-heavy start times, in a user's picking order, one session after the other."""
    hour_weights = _diurnal()
    day = np.floor(rng.random(len(user)) * days)
    hour = rng.choice(24, size=len(user), p=hour_weights)
    second = (day * 86_400 + hour * 3600 + rng.integers(0, 3600, len(user))).astype(np.int64)
    starts = np.empty(len(user), np.int64)
    # Rows are grouped by user in picking order: sort each user's times and lay sessions
    # end to end, so nobody watches two movies at once.
    bounds = np.flatnonzero(np.diff(user, prepend=-1, append=-1))
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        free = 0
        for row, wanted in zip(range(lo, hi), np.sort(second[lo:hi]).tolist(), strict=True):
            begin = max(wanted, free)
            starts[row] = begin
            free = begin + (int(last_minute[row]) + 1) * 60 + int(rng.integers(60, 1800))
    return starts * _US


def _diurnal() -> np.ndarray:
    hours = np.arange(24)
    weights = 0.3 + 3 * np.exp(-((hours - 20.5) ** 2) / 8) + np.exp(-((hours - 13) ** 2) / 8)
    return weights / weights.sum()


def _columns(
    kind: int,
    time_us: np.ndarray,
    user: np.ndarray,
    *,
    movie: np.ndarray | None = None,
    value: np.ndarray | None = None,
    reco: np.ndarray | None = None,
) -> _Columns:
    size = len(time_us)
    none = np.full(size, -1, np.int64)
    return {
        "kind": np.full(size, kind, np.int8),
        "time_us": time_us.astype(np.int64),
        "user": user.astype(np.int64),
        "movie": none if movie is None else movie.astype(np.int64),
        "value": none if value is None else value.astype(np.int64),
        "reco": none if reco is None else reco.astype(np.int64),
    }


def _watches(sessions: _Sessions) -> _Columns:
    """Minute 0 up to the stopping minute, one line a minute, on whole seconds."""
    counts = sessions.last_minute + 1
    row = np.repeat(np.arange(len(counts)), counts)
    minute = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    time_us = sessions.start_us[row] + minute * 60 * _US
    return _columns(_WATCH, time_us, sessions.user[row], movie=sessions.movie[row], value=minute)


def _ratings(world: World, rng: np.random.Generator, sessions: _Sessions, days: float) -> _Columns:
    """A rating after a share of sessions; some are changed later to a neighbouring star."""
    rated = np.flatnonzero(rng.random(len(sessions.user)) < RATE_SHARE)
    ends = sessions.start_us[rated] + (sessions.last_minute[rated] + 1) * 60 * _US
    time_us = ends + _jitter_us(rng, len(rated), 5, 600)
    stars = world.stars(sessions.affinity[rated], rng)
    again = np.flatnonzero(rng.random(len(rated)) < RERATE_SHARE)
    end_us = int(days * 86_400 * _US)
    later = time_us[again] + (rng.random(len(again)) * np.maximum(end_us - time_us[again], 0))
    step = np.where(rng.random(len(again)) < 0.5, -1, 1)
    restar = np.where((stars[again] + step < 1) | (stars[again] + step > 5), -step, step)
    rows = np.concatenate([rated, rated[again]])
    return _columns(
        _RATE,
        np.concatenate([time_us, later.astype(np.int64)]),
        sessions.user[rows],
        movie=sessions.movie[rows],
        value=np.concatenate([stars, stars[again] + restar]),
    )


def _accounts(rng: np.random.Generator, sessions: _Sessions) -> _Columns:
    """New users create an account a little before their first event."""
    users, first = np.unique(sessions.user, return_index=True)
    new = rng.random(len(users)) < ACCOUNT_SHARE
    # A recommendation may open the first session up to 30 s before it: go before that.
    time_us = sessions.start_us[first[new]] - _jitter_us(rng, int(new.sum()), 31, 300)
    return _columns(_ACCOUNT, np.maximum(time_us, 0), users[new])


def _recommendations(
    world: World, rng: np.random.Generator, sessions: _Sessions
) -> tuple[_Columns, list[_Request]]:
    """Some sessions start from a recommendation of popular movies; a few requests fail."""
    rows = np.flatnonzero(rng.random(len(sessions.user)) < RECOMMEND_SHARE)
    count = min(RECOMMEND_COUNT, len(world.movie_ids))
    pool = np.argsort(-world.popularity)[: max(RECOMMEND_POOL, count)]
    keys = np.log(world.popularity[pool]) + rng.gumbel(size=(len(rows), len(pool)))
    lists = pool[np.argsort(-keys, axis=1)[:, :count]]
    failed = rng.random(len(rows)) < RECOMMEND_FAIL_SHARE
    latency = np.where(
        failed,
        rng.integers(400, 800, len(rows)),
        np.ceil(rng.lognormal(np.log(60), 0.6, len(rows))),
    )
    time_us = np.maximum(sessions.start_us[rows] - _jitter_us(rng, len(rows), 1, 30), 0)
    servers = rng.integers(len(SERVERS), size=len(rows)).tolist()
    errors = rng.integers(len(ERRORS), size=len(rows)).tolist()
    requests: list[_Request] = [
        (SERVERS[server], 500, (), ERRORS[error])
        if fail
        else (SERVERS[server], 200, tuple(world.movie_ids[m] for m in movies), None)
        for server, error, fail, movies in zip(
            servers, errors, failed.tolist(), lists.tolist(), strict=True
        )
    ]
    columns = _columns(
        _RECO, time_us, sessions.user[rows], value=latency, reco=np.arange(len(rows))
    )
    return columns, requests


def _jitter_us(rng: np.random.Generator, size: int, low_s: float, high_s: float) -> np.ndarray:
    """Random delays with microseconds, as the real stream stamps its non-watch lines."""
    return (rng.uniform(low_s, high_s, size) * _US).astype(np.int64)


# --- lines ----------------------------------------------------------------------------


def _render(
    world: World, events: _Events, start: datetime, noise: float, rng: np.random.Generator
) -> Iterator[tuple[str, bytes]]:
    """Events to contract lines, in chunks (numpy -> Python), with noise spliced in."""
    user_ids = world.user_ids.tolist()
    movie_ids = world.movie_ids
    noise_after = _noise_plan(len(events), noise, rng)
    base = np.datetime64(start, "us")
    for lo in range(0, len(events), _CHUNK):
        hi = min(lo + _CHUNK, len(events))
        times = (base + events.time_us[lo:hi].astype("timedelta64[us]")).astype(object)
        columns = zip(
            range(lo, hi),
            events.kind[lo:hi].tolist(),
            times.tolist(),
            events.user[lo:hi].tolist(),
            events.movie[lo:hi].tolist(),
            events.value[lo:hi].tolist(),
            events.reco[lo:hi].tolist(),
            strict=True,
        )
        for index, kind, when, user, movie, value, reco in columns:
            event: Event
            if kind == _WATCH:
                event = Watch(when, user_ids[user], movie_ids[movie], value)
            elif kind == _RATE:
                event = Rate(when, user_ids[user], movie_ids[movie], value)
            elif kind == _RECO:
                server, status, movies, error = events.requests[reco]
                event = Recommendation(when, user_ids[user], server, status, movies, error, value)
            else:
                event = Account(when, user_ids[user])
            line = format_event(event).encode()
            yield KINDS[kind], line
            for what in noise_after.get(index, ()):
                yield f"noise:{what}", _noise_line(what, event, line, world, rng)


def _noise_plan(lines: int, share: float, rng: np.random.Generator) -> dict[int, list[str]]:
    """Which noise goes after which clean line: about ``share`` of the clean line count."""
    count = round(share * lines) if lines else 0
    positions = np.sort(rng.integers(0, max(lines, 1), count))
    kinds = rng.choice(list(NOISE_KINDS), size=count, p=list(NOISE_KINDS.values()))
    plan: dict[int, list[str]] = {}
    for position, what in zip(positions.tolist(), kinds.tolist(), strict=True):
        plan.setdefault(position, []).append(what)
    for whats in plan.values():
        whats.sort(key=lambda what: what != "duplicate")  # right behind the original
    return plan


def _noise_line(
    what: str, event: Watch | Rate | Recommendation | Account, line: bytes, world: World, rng
) -> bytes:
    """One dirty line, next to (and timed like) the clean line just written."""
    if what == "duplicate":
        return line
    if what == "truncated":
        return line[: int(rng.integers(1, len(line)))]
    if what == "garbage":
        return _garbage(rng)
    movie = world.movie_ids[int(rng.integers(len(world.movie_ids)))]
    if what == "unknown_kind":
        request = _UNKNOWN_REQUESTS[int(rng.integers(len(_UNKNOWN_REQUESTS)))]
        word = NOUNS[int(rng.integers(len(NOUNS)))]
        head = f"{format_time(event.time)},{event.user_id},"
        return (head + request.format(word=word, movie=movie)).encode()
    if what == "bad_rating":
        rating = (0, 6, 7, 10, 99)[int(rng.integers(5))]
        return format_event(Rate(event.time, event.user_id, movie, rating)).encode()
    bad_user = 0 if rng.random() < 0.5 else -event.user_id
    return format_event(dataclasses.replace(event, user_id=bad_user)).encode()


def _garbage(rng: np.random.Generator) -> bytes:
    """Random bytes (mostly invalid UTF-8) or random words; never a newline."""
    size = int(rng.integers(4, 120))
    if rng.random() < 0.5:
        raw = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        return raw.replace(b"\n", b"\xff").replace(b"\r", b"\xfe")
    words = rng.choice([*NOUNS, *ADJECTIVES, "%", "{", "}", ":", ";", "null", "?"], size // 6 + 1)
    return " ".join(words.tolist()).encode()


def simulate_lines(
    *,
    users: int = 3000,
    movies: int = 2000,
    days: float = 30.0,
    seed: int = 0,
    noise: float = 0.01,
    start: datetime = DEFAULT_START,
) -> Iterator[bytes]:
    """The simulated stream as lines only (what goes to a file or a topic)."""
    for _, line in World.build(users, movies, seed).generate(days, start, noise):
        yield line


def replay_lines(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """A MovieLens ratings file as ('rate', line) in timestamp order."""
    from simulator.replay import replay_events

    for event in replay_events(path):
        yield "rate", format_event(event).encode()


# --- destinations ---------------------------------------------------------------------


def write_lines(lines: Iterable[bytes], path: str | Path) -> int:
    """Write one line per line to a file ('-' is stdout); returns the count."""
    if str(path) == "-":
        return _write(lines, sys.stdout.buffer)
    with Path(path).open("wb", buffering=1 << 20) as handle:
        return _write(lines, handle)


def _write(lines: Iterable[bytes], handle: IO[bytes]) -> int:
    count = 0
    for line in lines:
        handle.write(line + b"\n")
        count += 1
    handle.flush()
    return count


def produce(lines: Iterable[bytes], bootstrap: str, topic: str) -> int:
    """Send every line to a topic, keyed by its user id field so a user's lines stay in
    order in one partition; returns the count once the broker has acknowledged all.

    The producer is idempotent (kafka-python's default), so retries neither duplicate nor
    reorder; big batches and a short linger are what make it fast.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024,
        metrics_enabled=False,
    )
    failures: list[BaseException] = []
    count = 0
    try:
        partition_of = _partitioner(sorted(producer.partitions_for(topic)))
        for line in lines:
            key = _user_key(line)
            future = producer.send(topic, value=line, key=key, partition=partition_of(key))
            future.add_errback(failures.append)
            count += 1
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} of {count} lines not delivered: {failures[0]!r}")
    return count


def _user_key(line: bytes) -> bytes | None:
    fields = line.split(b",", 2)
    return fields[1] if len(fields) > 1 else None


def _partitioner(partitions: list[int]) -> Callable[[bytes | None], int | None]:
    """The Java client's key -> partition (murmur2), cached per key: kafka-python hashes in
    pure Python on every send, which is a fifth of the producer's time on this stream."""
    from kafka.partitioner.default import murmur2

    @functools.cache
    def partition_of(key: bytes | None) -> int | None:
        if key is None:
            return None  # no key: let the producer spread it
        return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]

    return partition_of


# --- CLI ------------------------------------------------------------------------------


def naive_utc(moment: datetime) -> datetime:
    """The stream's clock: naive datetimes meaning UTC; aware ones are converted."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _parse_start(text: str) -> datetime:
    return naive_utc(datetime.fromisoformat(text))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.traffic",
        description="Write a simulated (or replayed MovieLens) event stream to a file, "
        "stdout or a Kafka topic. A JSON summary goes to stderr.",
    )
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--movies", type=int, default=2000)
    parser.add_argument("--days", type=float, default=30.0, help="simulated days (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.01, help="share of dirty lines")
    parser.add_argument(
        "--start",
        type=_parse_start,
        default=DEFAULT_START,
        help="first simulated moment, ISO-8601, naive UTC (default 2025-01-01T00:00:00); "
        "the consumer rejects lines more than a day in its future",
    )
    parser.add_argument(
        "--replay",
        metavar="FILE",
        help="replay a MovieLens ratings file (u.data, ratings.dat, ratings.csv) instead",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--out", metavar="FILE", help="write lines here ('-': stdout, default)")
    target.add_argument(
        "--kafka",
        metavar="BOOTSTRAP",
        nargs="?",
        const=locations.kafka_bootstrap(),
        help=f"produce to this broker (default $KAFKA_BOOTSTRAP or "
        f"{locations.DEFAULT_KAFKA_BOOTSTRAP})",
    )
    parser.add_argument(
        "--topic",
        default=locations.kafka_topic(),
        help=f"topic for --kafka (default $KAFKA_TOPIC or {locations.DEFAULT_TOPIC})",
    )
    return parser


def _counted(tagged: Iterable[tuple[str, bytes]], kinds: Counter) -> Iterator[bytes]:
    for kind, line in tagged:
        kinds[kind] += 1
        yield line


def summary(kinds: Counter, seconds: float) -> dict:
    """The run's numbers: lines by kind, noise lines, seconds, lines per second."""
    total = sum(kinds.values())
    return {
        "lines": total,
        "by_kind": dict(sorted(kinds.items())),
        "noise": sum(n for kind, n in kinds.items() if kind.startswith("noise:")),
        "seconds": round(seconds, 3),
        "lines_per_s": round(total / seconds) if seconds > 0 else None,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.replay:
        tagged = replay_lines(args.replay)
    else:
        world = World.build(args.users, args.movies, args.seed)
        tagged = world.generate(args.days, args.start, args.noise)
    kinds: Counter = Counter()
    began = time.perf_counter()
    lines = _counted(tagged, kinds)
    try:
        if args.kafka:
            produce(lines, args.kafka, args.topic)
        else:
            write_lines(lines, args.out or "-")
    except BrokenPipeError:  # `... | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    print(json.dumps(summary(kinds, time.perf_counter() - began)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    main()
