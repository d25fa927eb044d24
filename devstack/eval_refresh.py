"""``make eval-refresh``: is refreshing worth it, on real data? MovieLens-100K's held-out part
replayed in time order through the live refresher, what the service answers at each event
scored against what that user did next, with and without the refresher.

1. Cut the ratings at one time T for everyone and publish what happened before it, as
   ``make eval-served`` does (``devstack.eval_served``: the events before T replayed into a
   broker, consumed, snapshot, the ``recsys_retrain`` DAG with ``--models`` (default EASE,
   the served model) publishing to Redis); gunicorn serves it.
2. Every user with a rating after T asks the service once: that answer (their published
   list, or the cold-start list for users the snapshot never saw) is the answer *without*
   the refresher, all along.
3. The refresher (``python -m refresher run``) starts against the same broker and Redis.
   Every rating after T, oldest first, goes into the topic as the contract's rate line
   (``simulator.replay``, ``ingest.events.format_event``). At each scored event (``--sample``
   of them, seeded; 0: all) the run first waits until the refresher's progress marks
   (``refreshed:<partition>`` in the version's metadata, ``refresher.store.read_marks``)
   have passed every line sent so far (at most ``--wait`` seconds; ``timeouts`` counts the
   waits that ran out), then asks ``GET /recommend/<user>``: the answer *with* the refresher,
   before the event itself is sent.
4. Each answer is scored against the user's next movies (this one and every later one after
   T): NDCG@20 and Recall@20 (``training.ranking``'s definitions), averaged over events.
   Events of users the snapshot never saw are also reported by how many movies they had
   rated so far: what ``REFRESH_MIN_HISTORY`` (``--min-history``) is measured on; run with
   ``--min-history 1`` to see a personal list against popularity from the first movie.

``--offline`` does the same replay through the refresher's own functions instead, no broker,
Redis or service (``refresher.history.Base.histories``, ``refresher.lists.lists_for`` on
EASE fit in this process on the data before T): a cross-check that must give the same figures.

Prints one JSON line. Redis and a broker are started on free loopback ports unless
``--redis-url`` and ``--bootstrap`` name running ones; every process it started is stopped
at the end, or by Ctrl-C / SIGTERM / SIGHUP (``devstack.lifecycle``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from contracts import rediskeys
from contracts.response import LIST_LENGTH, SOURCE_HEADER, parse_body
from devstack import lifecycle
from devstack.demo import refresh
from devstack.eval_served import (
    EvalError,
    Laps,
    add_stack_arguments,
    ask_service,
    check_stack_arguments,
    last_json,
    log,
    on_stack,
    publish_before_cut,
    start_service,
)
from devstack.servers import REPO, Server

if TYPE_CHECKING:
    from ingest.events import Rate

K = LIST_LENGTH
LENGTHS = (0, 1, 2, 3, 5, 10)  # movies rated so far, for users the snapshot never saw
DEFAULT_SAMPLE = 3000  # events scored: the whole held-out part (20,001) takes hours live
EVAL_DATA_DIR = REPO / "var" / "eval-refresh"
REFRESHER_START = 120.0  # seconds the first wait may also take: the refresher loading


def ndcg_recall(listed: list[str], relevant: set[str]) -> tuple[float, float]:
    gains = [1.0 / np.log2(i + 2) for i, movie in enumerate(listed[:K]) if movie in relevant]
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(K, len(relevant))))
    hits = sum(1 for movie in listed[:K] if movie in relevant)
    return (sum(gains) / ideal if ideal else 0.0), hits / max(1, min(K, len(relevant)))


def bucket(n: int) -> str:
    chosen = max(b for b in LENGTHS if b <= n)
    return f"{chosen}+" if chosen == LENGTHS[-1] else str(chosen)


def held_out(ratings: Path, cutoff: np.datetime64) -> list[Rate]:
    """The file's ratings at or after ``cutoff``, oldest first (ties in file order): the
    events ``eval_served.replay_before`` leaves out."""
    from simulator.replay import replay_events

    cut = cutoff.astype("datetime64[us]").item()
    return [event for event in replay_events(ratings) if event.time >= cut]


def chosen_events(count: int, sample: int) -> set[int]:
    """The indices of the events scored: ``sample`` of ``count``, seeded (0: all)."""
    if not sample or sample >= count:
        return set(range(count))
    return set(np.random.default_rng(0).choice(count, sample, replace=False).tolist())


@dataclass
class Tally:
    """Both answers' scores per event, and the new users' by movies rated so far."""

    scores: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    by_length: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    changed: int = 0  # events at which the two answers differ

    def add(self, with_: list[str], without: list[str], nxt: set[str], new_at: int | None) -> None:
        """``new_at``: movies rated so far, for a user the snapshot never saw (else None)."""
        n_with, r_with = ndcg_recall(with_, nxt)
        n_without, r_without = ndcg_recall(without, nxt)
        self.scores["with"].append((n_with, r_with))
        self.scores["without"].append((n_without, r_without))
        self.changed += with_ != without
        if new_at is not None:
            self.by_length[bucket(new_at)]["personal"].append(n_with)
            self.by_length[bucket(new_at)]["popularity"].append(n_without)

    def figures(self) -> dict[str, Any]:
        def mean(kind: str, i: int) -> float:
            return round(float(np.mean([s[i] for s in self.scores[kind]])), 4)

        return {
            "events": len(self.scores["with"]),
            f"with_refresher_ndcg@{K}": mean("with", 0),
            f"without_refresher_ndcg@{K}": mean("without", 0),
            f"with_refresher_recall@{K}": mean("with", 1),
            f"without_refresher_recall@{K}": mean("without", 1),
            "answers_changed": self.changed,
            "cold_start_by_movies_so_far": {
                key: {
                    "events": len(value["personal"]),
                    f"personal_ndcg@{K}": round(float(np.mean(value["personal"])), 4),
                    f"popularity_ndcg@{K}": round(float(np.mean(value["popularity"])), 4),
                }
                for key, value in sorted(self.by_length.items())
            },
        }


def replay(
    events: list[Rate],
    picked: set[int],
    without: dict[int, list[str]],
    new_users: set[int],
    *,
    ask: Callable[[int], list[str]],
    send: Callable[[int, Rate], None],
) -> Tally:
    """Steps 3-4: at each picked event the user's answer now (``ask``) and ``without``
    theirs, scored against their movies from this one on; then the event is ``send``."""
    future: dict[int, list[str]] = defaultdict(list)
    for event in events:
        future[event.user_id].append(event.movie_id)
    position: dict[int, int] = defaultdict(int)
    tally = Tally()
    for index, event in enumerate(events):
        user = event.user_id
        if index in picked:
            nxt = set(future[user][position[user] :])
            new_at = position[user] if user in new_users else None
            tally.add(ask(user), without[user], nxt, new_at)
        send(index, event)
        position[user] += 1
    return tally


# -- through the live service ------------------------------------------------------------


class Stream:
    """The held-out events into the topic (keyed by user, as ``simulator.traffic.produce``
    sends them, so each user's stay in order on one partition), and the wait for the
    refresher's marks to pass what was sent."""

    def __init__(self, env: dict[str, str], version: str, refresher: Server, wait: float) -> None:
        import redis
        from kafka import KafkaProducer

        self.topic = env["KAFKA_TOPIC"]
        self.producer = KafkaProducer(
            bootstrap_servers=env["KAFKA_BOOTSTRAP"].split(","), linger_ms=0
        )
        self.redis = redis.Redis.from_url(env["REDIS_URL"])
        self.version = version
        self.refresher = refresher
        self.wait = wait
        self.pending: list[Any] = []  # send futures not yet acknowledged
        self.sent: dict[int, int] = {}  # per partition, the offset after the last line sent
        self.timeouts = 0
        self.waited = 0
        self._first = True

    def close(self) -> None:
        self.producer.close()
        self.redis.close()

    def send(self, _index: int, event: Rate) -> None:
        from ingest.events import format_event

        line = format_event(event).encode()
        self.pending.append(self.producer.send(self.topic, value=line, key=line.split(b",")[1]))

    def caught_up(self) -> None:
        """Wait until the refresher has refreshed every line sent so far (the first wait
        also covers its start)."""
        from refresher.store import read_marks

        self.producer.flush()
        for future in self.pending:
            placed = future.get(timeout=30)
            self.sent[placed.partition] = max(self.sent.get(placed.partition, 0), placed.offset + 1)
        self.pending.clear()
        if not self.sent:
            return
        limit = self.wait + (REFRESHER_START if self._first else 0.0)
        self._first = False
        self.waited += 1
        deadline = time.monotonic() + limit
        while True:
            marks = read_marks(self.redis, self.version)[2]
            if all(marks.get(p, 0) >= offset for p, offset in self.sent.items()):
                return
            if not self.refresher.alive:
                tail = self.refresher.log_path.read_text(errors="replace")[-3000:]
                raise EvalError(f"the refresher exited; {self.refresher.log_path}:\n{tail}")
            if time.monotonic() >= deadline:
                self.timeouts += 1
                return
            time.sleep(0.01)


def start_refresher(
    data_dir: Path, env: dict[str, str], min_history: int, servers: list[Server]
) -> Server:
    """``python -m refresher run`` as the demo starts it (``devstack.demo.refresh``), put in
    ``servers``."""
    refresher = refresh(
        {
            **env,
            "REFRESH_MIN_HISTORY": str(min_history),
            # Each wait is for one batch: a shorter gathering time only makes it sooner.
            "REFRESH_BATCH_SECONDS": env.get("REFRESH_BATCH_SECONDS") or "0.05",
        },
        data_dir,
    )
    servers.append(refresher)
    return refresher


def evaluate_live(
    ratings: Path,
    *,
    data_dir: Path,
    env: dict[str, str],
    train_share: float,
    sample: int,
    min_history: int,
    models: list[str],
    wait: float,
    workers: int,
    servers: list[Server],
) -> dict[str, Any]:
    """Steps 1-4 of the module doc against the Redis and broker ``env`` names; what it
    starts (the service, the refresher) is appended to ``servers`` for the caller to stop."""
    import redis
    import requests

    from training.history import History
    from training.split import global_split

    laps = Laps()
    history = History.from_movielens(ratings)
    split = global_split(history, train_share=train_share)
    events = held_out(ratings, split.cutoff)
    log(f"{len(events)} events after {split.cutoff}")
    publish_before_cut(ratings, split, models=models, data_dir=data_dir, env=env, laps=laps)
    with redis.Redis.from_url(env["REDIS_URL"]) as client:
        active = client.get(rediskeys.ACTIVE)
    if active is None:
        raise EvalError("the gate promoted no model, so nothing was published; see retrain.log")
    version = active.decode()

    base = start_service(data_dir, env, workers, servers)
    users = sorted({event.user_id for event in events})
    first = ask_service(base, users, threads=8)
    without = {user: answer for user, (answer, _) in zip(users, first, strict=True)}
    new_users = {
        user for user, (_, source) in zip(users, first, strict=True) if source != "personal"
    }
    log(f"{version} published; {len(users)} users asked ({len(new_users)} not in the snapshot)")
    laps("serve")

    refresher = start_refresher(data_dir, env, min_history, servers)
    stream = Stream(env, version, refresher, wait)
    session = requests.Session()
    with_sources: Counter[str] = Counter()

    def ask(user: int) -> list[str]:
        stream.caught_up()
        answer = session.get(f"{base}/recommend/{user}", timeout=10)
        if answer.status_code != 200:
            raise EvalError(f"GET /recommend/{user}: HTTP {answer.status_code} {answer.text!r}")
        with_sources[answer.headers.get(SOURCE_HEADER, "")] += 1
        return parse_body(answer.text)

    picked = chosen_events(len(events), sample)
    try:
        tally = replay(events, picked, without, new_users, ask=ask, send=stream.send)
        stream.caught_up()
    finally:
        stream.close()
        session.close()
        servers.remove(refresher)
        refresher.stop(timeout=lifecycle.STOP_TIMEOUT)  # it prints its stats as it stops
    laps("replay_after_cut")
    try:
        stats = last_json(refresher.log_path.read_text(errors="replace").splitlines())
    except EvalError:
        stats = {}
    return {
        **tally.figures(),
        "users": len(users),
        "cold_start_users": len(new_users),
        "timeouts": stream.timeouts,
        "waits": stream.waited,
        "sources_with_refresher": dict(sorted(with_sources.items())),
        "refresher": {k: stats.get(k) for k in ("events", "refreshed", "skipped", "batches")},
        "min_history": min_history,
        "model_version": version,
        "cut": str(split.cutoff),
        "path": "service",
        "seconds": laps.seconds,
    }


# -- offline: the refresher's functions ------------------------------------------------


def evaluate_offline(
    ratings: Path, *, train_share: float, sample: int, min_history: int
) -> dict[str, Any]:
    """The same replay with no broker, Redis or service: EASE fit here on the data before
    T, the published lists and each refreshed one made by the refresher's functions."""
    import pandas as pd

    from ingest.snapshot import Manifest, Snapshot
    from precompute.bodies import Catalogue
    from refresher.history import Base
    from refresher.lists import lists_for
    from refresher.recent import Recent
    from training.history import History
    from training.registry import ModelMeta
    from training.settings import Settings
    from training.split import global_split
    from training.train import make_algorithm

    started = time.perf_counter()
    history = History.from_movielens(ratings)
    split = global_split(history, train_share=train_share)
    events = held_out(ratings, split.cutoff)
    model = make_algorithm("ease", Settings.from_env()).fit(split.snapshot)
    times = history.ratings["time"].to_numpy(dtype="datetime64[us]")
    before = history.ratings[times < split.cutoff.astype("datetime64[us]")]
    before = before.sort_values(["user_id", "movie_id"])
    empty_watches = pd.DataFrame(
        {
            "user_id": pd.Series(dtype="int64"),
            "movie_id": pd.Series(dtype=object),
            "minutes": pd.Series(dtype="int32"),
            "first_time": pd.Series(dtype="datetime64[us]"),
            "last_time": pd.Series(dtype="datetime64[us]"),
        }
    )
    manifest = Manifest("ml100k-before-cut", "", 2, "replay", None, {"0": [0, -1]}, {}, {}, "")
    snapshot = Snapshot(manifest, before, empty_watches, pd.DataFrame(), pd.DataFrame())
    meta = ModelMeta("ease", "ease", {}, manifest.snapshot_id, "", "", 0.0, 0, 0)
    base = Base(model, meta, snapshot)
    catalogue = Catalogue(model.item_ids)
    cold = [str(model.item_ids[i]) for i in np.argsort(-base.popularity, kind="stable")[:K]]
    recent = Recent()

    def lists(users: list[int]) -> dict[int, list[str]]:
        ids = np.array(users, dtype=np.int64)
        made = lists_for(
            base, catalogue, base.histories(ids, recent.since(users, {})), min_history=min_history
        )
        return {u: b.decode().split(",") for u, b in zip(made.user_ids, made.bodies, strict=True)}

    users = sorted({event.user_id for event in events})
    known = [u for u, k in zip(users, base.knows(np.array(users)), strict=True) if k]
    published = lists(known)
    without = {user: published.get(user, cold) for user in users}

    def send(index: int, event: Rate) -> None:
        recent.add(0, index, event, 0.0)

    def ask(user: int) -> list[str]:
        return lists([user]).get(user, without[user])  # no list made: the service's answer

    picked = chosen_events(len(events), sample)
    tally = replay(events, picked, without, set(users) - set(known), ask=ask, send=send)
    return {
        **tally.figures(),
        "users": len(users),
        "cold_start_users": len(users) - len(known),
        "min_history": min_history,
        "cut": str(split.cutoff),
        "path": "offline",
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    from refresher.settings import Settings as RefresherSettings

    parser = argparse.ArgumentParser(
        prog="python -m devstack.eval_refresh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ratings", type=Path, help="default: MovieLens-100K's u.data")
    parser.add_argument("--train-share", type=float, default=0.8)
    parser.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_SAMPLE,
        help=f"events scored, seeded (default {DEFAULT_SAMPLE}; 0: all)",
    )
    parser.add_argument(
        "--min-history",
        type=int,
        default=RefresherSettings.min_history,
        help=f"REFRESH_MIN_HISTORY (default {RefresherSettings.min_history})",
    )
    parser.add_argument(
        "--models", nargs="+", default=["ease"], help="the DAG's models param (default ease)"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for the refresher at an event (default 30)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="the refresher's functions, no broker/service"
    )
    add_stack_arguments(parser, EVAL_DATA_DIR)
    args = parser.parse_args(argv)
    if not 0 < args.train_share < 1:
        parser.error("--train-share must be in (0, 1)")
    check_stack_arguments(parser, args)
    if args.ratings is None:
        from devstack.ml100k import fetch_ml100k

        args.ratings = fetch_ml100k()

    if args.offline:
        offline = evaluate_offline(
            args.ratings,
            train_share=args.train_share,
            sample=args.sample,
            min_history=args.min_history,
        )
        print(json.dumps(offline), flush=True)
        return 0
    result = on_stack(
        args,
        "eval-refresh",
        lambda data_dir, env, servers: evaluate_live(
            args.ratings,
            data_dir=data_dir,
            env=env,
            train_share=args.train_share,
            sample=args.sample,
            min_history=args.min_history,
            models=args.models,
            wait=args.wait,
            workers=args.workers,
            servers=servers,
        ),
    )
    if result is None:
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    lifecycle.run_main(main)
