"""The simulator's "movie app" mode: simulated users ask the real service and react to its lists.

Offline metrics judge a model against what users did without it; an online experiment needs
users who see the model's lists and act on them. Here the traffic simulator's users
(``simulator.traffic.World``: hidden tastes, movie vectors, popularity) open the app, which calls
``GET /recommend/<userid>`` on a running service, and then behave like a cascade: they read
the list top down, look at each next position with probability ``Behaviour.examine`` and start
the first movie they look at with probability ``sigmoid(slope * (interest - midpoint))``
(``World.interest``: affinity plus popularity's pull). A
user who starts nothing from the list picks a movie on their own now and then (organic
watching, as in ``World.generate``). A started movie is watched minute by minute for as long
as ``World.watch_fractions`` says, and rated with the simulator's rate share.

Every reaction is a contract line (``ingest.events.format_event``): the stream's
``recommendation request`` line for the call, then watch and rate lines, at wall-clock event
times (watch minutes run into the next hours: the consumer accepts a day of clock skew), so
the service's own request log and the stream line up for the conversion join. A good model
therefore earns more watches than a weak one for reasons the world, not the code, decides.

``python -m simulator.movieapp --help``; ``MovieApp.lines`` is the same as a generator.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import numpy as np

from contracts import locations
from ingest.events import Rate, Recommendation, Watch, format_event
from simulator.traffic import RATE_SHARE, World, produce

TIMEOUT_SECONDS = 2.0  # the real callers give up after 600-800 ms; this only bounds a hang


@dataclass(frozen=True)
class Behaviour:
    """How a user reacts to a list. With the defaults the world's true top 20 for a user
    converts about 54% of visits, the popular list 30% and a random list 1%."""

    examine: float = 0.8  # chance to look at the next position after skipping one
    slope: float = 2.0  # P(start | looked at) = sigmoid(slope * (interest - midpoint))
    midpoint: float = 4.0  # with these, the true top 20 converts ~54%, popular 30%, random 1%
    organic: float = 0.3  # chance to pick a movie alone after starting nothing from the list
    rate: float = RATE_SHARE  # chance to rate a watched movie


@dataclass(frozen=True)
class Visit:
    """One app open: what the service answered and what the user started (if anything)."""

    user_id: int
    status: int
    movies: tuple[str, ...]
    variant: str | None
    version: str | None
    started: str | None  # the movie the user started
    position: int | None  # its 1-based position in the list; None if organic or nothing
    lines: tuple[bytes, ...]


class MovieApp:
    """Simulated users of one world calling one service. Not thread-safe: one connection."""

    def __init__(
        self,
        world: World,
        service_url: str,
        *,
        seed: int = 0,
        behaviour: Behaviour | None = None,
        users: np.ndarray | None = None,
    ) -> None:
        """``users``: indices into ``world.user_ids`` of the only users who visit (default
        all), so two experiments in a row can each have users new to them."""
        self.world = world
        self.behaviour = behaviour or Behaviour()
        self._rng = np.random.default_rng([world.seed, 2, seed])
        parts = urlsplit(service_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"service URL must be http://host:port, not {service_url!r}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._server = f"{self._host}:{self._port}"
        self._connection: http.client.HTTPConnection | None = None
        self._users = np.arange(len(world.user_ids)) if users is None else np.asarray(users)
        activity = world.activity[self._users]
        self._visit_p = activity / activity.sum()  # active users open it more often

    def visits(self, count: int | None = None, seconds: float | None = None) -> Iterator[Visit]:
        """Visits by users drawn by activity, until ``count`` or ``seconds`` run out."""
        deadline = time.monotonic() + seconds if seconds is not None else float("inf")
        done = 0
        while (count is None or done < count) and time.monotonic() < deadline:
            user = int(self._rng.choice(self._users, p=self._visit_p))
            yield self.visit(int(self.world.user_ids[user]))
            done += 1

    def lines(self, count: int | None = None, seconds: float | None = None) -> Iterator[bytes]:
        for visit in self.visits(count, seconds):
            yield from visit.lines

    def visit(self, user_id: int) -> Visit:
        now = _utcnow()
        status, movies, error, headers, latency_ms = self._ask(user_id)
        lines = [
            format_event(
                Recommendation(now, user_id, self._server, status, movies, error, latency_ms)
            ).encode()
        ]
        affinity = self.world.affinities(user_id)  # the user's taste, once per visit
        started, position = self._react(affinity, movies)
        if started is not None:
            start = now + timedelta(seconds=float(self._rng.uniform(2, 30)))
            lines.extend(self._watch(user_id, affinity, started, start))
        return Visit(
            user_id,
            status,
            movies,
            headers.get("x-ab-variant"),
            headers.get("x-model-version"),
            started,
            position,
            tuple(lines),
        )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # --- the service call ---------------------------------------------------------------

    def _ask(self, user_id: int) -> tuple[int, tuple[str, ...], str | None, dict[str, str], int]:
        """(status, movies, error, lower-cased headers, latency ms); a failed call is a
        recommendation line with its error, as the real stream logs one."""
        started = time.perf_counter()
        try:
            if self._connection is None:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=TIMEOUT_SECONDS
                )
            self._connection.request("GET", f"/recommend/{user_id}")
            answer = self._connection.getresponse()
            body = answer.read().decode("utf-8", "replace").strip()
            headers = {name.lower(): value for name, value in answer.getheaders()}
            status = answer.status
        except (OSError, http.client.HTTPException) as exc:
            self.close()  # a broken keep-alive connection is not reused
            latency = _ms(started)
            return 504, (), f"{type(exc).__name__}: {exc}".replace(",", ";"), {}, latency
        latency = _ms(started)
        if status != 200:
            return status, (), " ".join(body.split()).replace(",", ";") or "error", {}, latency
        return status, tuple(m for m in body.split(",") if m), None, headers, latency

    # --- the user's reaction ------------------------------------------------------------

    def _react(
        self, affinity: np.ndarray, movies: tuple[str, ...]
    ) -> tuple[str | None, int | None]:
        """The movie the user starts and its position (None when picked alone)."""
        known = [(i, m) for i, m in enumerate(movies) if self.world.has_movie(m)]
        if known:
            interest = self.world.interest(affinity)
            b = self.behaviour
            for looked, (position, movie) in enumerate(known):  # top down, first start wins
                if looked and self._rng.random() >= b.examine:
                    break  # stopped reading the list
                tempted = interest[self.world.movie_index(movie)]
                if self._rng.random() < 1.0 / (1.0 + np.exp(-b.slope * (tempted - b.midpoint))):
                    return movie, position + 1
        if self._rng.random() < self.behaviour.organic:
            logits = self.world.choice_logits(affinity)
            keys = logits + self._rng.gumbel(size=len(logits))
            return self.world.movie_ids[int(np.argmax(keys))], None
        return None, None

    def _watch(
        self, user_id: int, affinity: np.ndarray, movie: str, start: datetime
    ) -> list[bytes]:
        """Minute lines for as long as the user keeps watching, then perhaps a rating."""
        index = self.world.movie_index(movie)
        affinity = affinity[index : index + 1]
        length = int(self.world.lengths[index])
        last = min(int(self.world.watch_fractions(affinity, self._rng)[0] * length), length - 1)
        lines = [
            format_event(Watch(start + timedelta(minutes=m), user_id, movie, m)).encode()
            for m in range(last + 1)
        ]
        if self._rng.random() < self.behaviour.rate:
            stars = int(self.world.stars(affinity, self._rng)[0])
            end = start + timedelta(minutes=last + 1)
            lines.append(format_event(Rate(end, user_id, movie, stars)).encode())
        return lines


def _utcnow() -> datetime:
    """Naive UTC with whole milliseconds, as the stream's lines carry."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _ms(started: float) -> int:
    return max(1, round((time.perf_counter() - started) * 1000))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.movieapp",
        description="Simulated users of a world call a running service and produce the lines "
        "their reactions make (recommendation, watch, rate) to Kafka or stdout. The world "
        "must be the one the served model learned from (same --users/--movies/--seed as "
        "`python -m simulator.traffic`). A JSON summary goes to stderr.",
    )
    parser.add_argument("--service", default="http://127.0.0.1:8082", help="the service's URL")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--movies", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="the world's seed")
    parser.add_argument("--visits", type=int, default=1000, help="app opens (default 1000)")
    parser.add_argument("--seconds", type=float, help="stop after this long instead")
    parser.add_argument("--kafka", metavar="BOOTSTRAP", help="produce here; default: stdout")
    parser.add_argument(
        "--topic",
        default=locations.kafka_topic(),
        help=f"topic for --kafka (default $KAFKA_TOPIC or {locations.DEFAULT_TOPIC})",
    )
    args = parser.parse_args(argv)
    app = MovieApp(World.build(args.users, args.movies, args.seed), args.service)
    count = None if args.seconds is not None else args.visits
    tally: Counter[str] = Counter()

    def tallied() -> Iterator[bytes]:
        for visit in app.visits(count, args.seconds):
            tally["visits"] += 1
            tally["ok" if visit.status == 200 else "failed"] += 1
            tally["from_list" if visit.position else "organic" if visit.started else "none"] += 1
            yield from visit.lines

    try:
        if args.kafka:
            lines = produce(tallied(), args.kafka, args.topic)
        else:
            lines = 0
            for line in tallied():
                sys.stdout.buffer.write(line + b"\n")
                lines += 1
    finally:
        app.close()
    print(json.dumps({**tally, "lines": lines}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
