"""``make eval-served``: the promoted model's quality measured through the live service, on
real ratings, against the leaderboard's figure for the same model on the same split.

1. Read a MovieLens ratings file (default MovieLens-100K, ``devstack.ml100k``) and cut it at
   one time T for everyone (``training.split.global_split``): ``--train-share`` of the
   events happened before T.
2. Replay the events before T, oldest first, into the broker as the contract's rate lines
   (``simulator.replay``, ``ingest.events.format_event``); nothing after T is sent, so the
   snapshot is exactly the data before T.
3. Consume them with the real consumer and cut a snapshot (``python -m ingest consume
   --idle 3 --snapshot``).
4. Run the ``recsys_retrain`` DAG (``devstack.retrain``, ``dag.test()``): train
   ``--models``, evaluate, gate, precompute, publish to Redis.
5. Serve with gunicorn (``python -m service``) on a free port and ask ``GET
   /recommend/<userid>`` for every user with a new movie after T (the cold-start users,
   who had no event before T, included).
6. Score the answers against each user's movies after T with the leaderboard's metric code
   (``training.evaluate.evaluate_lists``, ``training.ranking``), and run the leaderboard on
   the same global split with the same models and settings (``training.evaluate.leaderboard``
   with ``global_share``); its figure for the model the gate promoted is the offline one.

Prints one JSON line: ``served_ndcg@20``, ``offline_ndcg@20``, ``users``, ``model`` (the
promoted algorithm), then what explains a gap: ``artifact_ndcg@20`` (the DAG's own model
file scored offline on the split: training vs serving), ``same_lists`` (users whose served
list is that model's offline list), the answers' sources, the cold-start users, the cut,
``same_training_data`` (the snapshot holds exactly the split's training part) and
``same_recipe`` (the leaderboard's model has the promoted model's recorded parameters),
every model's offline figure and ``leaderboard_served`` (the model the gate's rule picks on
this split; the DAG's gate judges on the snapshot's own per-user split).
Exit status 1 when served is not within ``--tolerance`` (5%) of offline.

Redis and a broker are started on free loopback ports unless ``--redis-url`` and
``--bootstrap`` name running ones (the tests pass theirs); every process it started is
stopped at the end, or by Ctrl-C / SIGTERM / SIGHUP (``devstack.lifecycle``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from contracts import locations
from contracts.response import LIST_LENGTH, SOURCE_HEADER, parse_body
from devstack import lifecycle
from devstack.lifecycle import say
from devstack.servers import LOOPBACK, REPO, Server, free_port, kafka_broker, redis_server

if TYPE_CHECKING:
    from ingest.snapshot import Snapshot
    from training.factors import FactorModel
    from training.split import GlobalSplit

EVAL_DATA_DIR = REPO / "var" / "eval-served"
DEFAULT_MODELS = ["multdae", "puresvd", "ease"]  # the retrain DAG's default ``models``
DEFAULT_TOPIC = f"{locations.DEFAULT_TOPIC}-replay"
K = LIST_LENGTH  # the service answers 20; the figures are @20


class EvalError(RuntimeError):
    pass


def log(message: str) -> None:
    say(f"==> {message}")


def step(argv: list[str], env: dict[str, str], log_path: Path) -> list[str]:
    """Run a pipeline step to its end, its output to ``log_path``; its stdout lines."""
    with log_path.open("w") as out:
        code = lifecycle.run_step(argv, env, stdout=out)
    lines = log_path.read_text().splitlines()
    if code != 0:
        tail = "\n".join(lines[-40:])
        raise EvalError(f"{' '.join(argv[1:])} failed ({code}); {log_path}:\n{tail}")
    return lines


def last_json(lines: list[str]) -> dict:
    for line in reversed(lines):
        if line.startswith("{"):
            return json.loads(line)
    raise EvalError("no JSON line in the step's output")


def ensure_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if topic not in admin.list_topics():
            admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def replay_before(ratings: Path, cutoff: np.datetime64, env: dict[str, str]) -> int:
    """Every rating of the file before ``cutoff`` into the topic, oldest first, as the
    contract's lines; returns how many."""
    from ingest.events import format_event
    from simulator.replay import replay_events
    from simulator.traffic import produce

    cut = cutoff.astype("datetime64[us]").item()
    lines = [format_event(e).encode() for e in replay_events(ratings) if e.time < cut]
    ensure_topic(env["KAFKA_BOOTSTRAP"], env["KAFKA_TOPIC"])
    return produce(lines, env["KAFKA_BOOTSTRAP"], env["KAFKA_TOPIC"])


def ask_service(base: str, users: list[int], threads: int) -> list[tuple[list[str], str]]:
    """``GET /recommend/<user>`` for each user (kept-alive sessions, ``threads`` at once):
    each answer's movie IDs and its source header, in ``users``' order."""
    import requests

    local = threading.local()

    def get(user: int) -> tuple[list[str], str]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        answer = session.get(f"{base}/recommend/{user}", timeout=10)
        if answer.status_code != 200:
            raise EvalError(f"GET /recommend/{user}: HTTP {answer.status_code} {answer.text!r}")
        return parse_body(answer.text), answer.headers.get(SOURCE_HEADER, "")

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(get, users))


def same_training_data(snapshot: Snapshot, split: GlobalSplit) -> bool:
    """Whether the snapshot indexes exactly the split's training part (users, movies, what
    each saw and when, ratings in order): then the DAG and the leaderboard fit their models
    on the same data."""
    from training.interactions import Interactions

    served = Interactions.from_snapshot(snapshot)
    offline = split.snapshot

    def same(a: sparse.spmatrix | None, b: sparse.spmatrix | None) -> bool:
        if a is None or b is None:
            return a is None and b is None
        return a.shape == b.shape and (a != b).nnz == 0

    return bool(
        np.array_equal(served.user_ids, offline.user_ids)
        and np.array_equal(served.item_ids, offline.item_ids)
        and same(served.seen, offline.seen)
        # When each pair was last seen, where the model weighs by recency.
        and same(getattr(served, "last_contact", None), getattr(offline, "last_contact", None))
        and served.ratings.reset_index(drop=True).equals(offline.ratings.reset_index(drop=True))
    )


class Laps:
    """Seconds each stage took, for the JSON line."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._started, 1)
        self._started = now


def publish_before_cut(
    ratings: Path,
    split: GlobalSplit,
    *,
    models: list[str],
    data_dir: Path,
    env: dict[str, str],
    laps: Laps,
) -> tuple[int, str]:
    """Steps 2-4: replay the events before the cut, consume, snapshot, retrain and publish;
    the number of lines replayed and the snapshot's ID."""
    python = sys.executable
    replayed = replay_before(ratings, split.cutoff, env)
    log(f"replayed {replayed} rate lines into {env['KAFKA_TOPIC']}")
    laps("replay")

    consume = [python, "-m", "ingest", "consume", "--idle", "3", "--snapshot"]
    lines = step(consume, env, data_dir / "consume.log")
    consumed = next(json.loads(line) for line in lines if line.startswith("{"))
    snapshot_id = last_json(lines)["snapshot_id"]
    if consumed.get("consumed") != replayed or consumed.get("rejected"):
        raise EvalError(f"sent {replayed} lines, the consumer says {consumed}")
    log(f"consumed {replayed} lines; snapshot {snapshot_id}")
    laps("consume")

    conf = json.dumps({"models": models, "snapshot_id": snapshot_id})
    airflow_home = str(data_dir / "airflow")
    retrain = [python, "-m", "devstack.retrain", "--airflow-home", airflow_home, "--conf", conf]
    run = last_json(step(retrain, env, data_dir / "retrain.log"))
    if run.get("state") != "success":
        raise EvalError(f"recsys_retrain: {run}")
    log(f"recsys_retrain {run['run_id']}: {run['state']}")
    laps("retrain")
    return replayed, snapshot_id


def start_service(data_dir: Path, env: dict[str, str], workers: int, servers: list[Server]) -> str:
    """gunicorn (``python -m service``) on a free port, put in ``servers`` for the caller to
    stop; its base URL."""
    port = free_port()
    service = Server(
        "service",
        [sys.executable, "-m", "service"],
        port,
        data_dir / "service.log",
        env={**env, "SERVICE_BIND": f"{LOOPBACK}:{port}", "WEB_CONCURRENCY": str(workers)},
    )
    servers.append(service.start(timeout=30))
    return f"http://{LOOPBACK}:{port}"


def ask_live_service(
    users: list[int],
    *,
    data_dir: Path,
    env: dict[str, str],
    workers: int,
    threads: int,
    servers: list[Server],
) -> list[tuple[list[str], str]]:
    """Step 5: the service started (``start_service``), asked for ``users``, stopped."""
    base = start_service(data_dir, env, workers, servers)
    try:
        return ask_service(base, users, threads)
    finally:
        servers.pop().stop(timeout=lifecycle.STOP_TIMEOUT)


def artifact_lists(
    artifact: FactorModel, split: GlobalSplit, answers: list[tuple[list[str], str]]
) -> tuple[float, int]:
    """The DAG's own model file scored offline on the split (its NDCG), and how many users
    the service answered with exactly the list it gives them offline: where the two agree
    and the figures still differ, training differs; where they do not, serving does."""
    from training.evaluate import evaluate_model, top_lists

    if not np.array_equal(artifact.item_ids, split.train.item_ids):
        return float("nan"), 0  # the snapshot's catalogue is not the split's: a bug in itself
    users = split.test_users
    position = {int(user): i for i, user in enumerate(users)}
    same = 0
    for block, top in top_lists(artifact, split, users, K):
        for user, row in zip(block, top, strict=True):
            same += answers[position[int(user)]][0] == split.train.item_ids[row[row >= 0]].tolist()
    return evaluate_model(artifact, split, K)[f"ndcg@{K}"], same


def evaluate_served(
    ratings: Path,
    *,
    data_dir: Path,
    env: dict[str, str],
    train_share: float = 0.8,
    models: list[str] | None = None,
    workers: int = 2,
    threads: int = 8,
    servers: list[Server],
) -> dict:
    """Steps 1-6 of the module doc against the Redis and broker ``env`` names; what it
    starts (the service) is appended to ``servers`` for the caller to stop."""
    from ingest.snapshot import open_store
    from training.evaluate import evaluate_lists, leaderboard
    from training.history import History
    from training.registry import ModelRegistry
    from training.settings import Settings
    from training.split import global_split
    from training.train import make_algorithm

    models = models or DEFAULT_MODELS
    laps = Laps()
    history = History.from_movielens(ratings)
    split = global_split(history, train_share=train_share)
    test_users = split.test_users
    log(
        f"{history.source}: {split.train_events} of {len(history.ratings)} events before "
        f"{split.cutoff}; {len(test_users)} users with new movies after it "
        f"({len(split.cold_users)} with nothing before)"
    )
    replayed, snapshot_id = publish_before_cut(
        ratings, split, models=models, data_dir=data_dir, env=env, laps=laps
    )
    settings = Settings.from_env(env)
    registry = ModelRegistry(settings.data_dir)
    production = registry.production()
    if production is None:
        raise EvalError("the gate promoted no model, so nothing was published; see retrain.log")
    log(f"{production.version} promoted and published")

    answers = ask_live_service(
        [int(u) for u in split.train.user_ids[test_users]],
        data_dir=data_dir,
        env=env,
        workers=workers,
        threads=threads,
        servers=servers,
    )
    log(f"asked the service for {len(answers)} users")
    laps("serve")

    served = evaluate_lists(split, test_users, [a[0] for a in answers], K, settings.seed)
    board = leaderboard(
        history,
        [make_algorithm(name, settings) for name in models],
        k=K,
        seed=settings.seed,
        global_share=train_share,
        min_lift=settings.gate_min_lift,
    )
    offline = board["models"][production.algorithm]
    # The leaderboard's recipe is the DAG's only if both read the same settings and code.
    recipe = make_algorithm(production.algorithm, settings).params()
    artifact_ndcg, same_lists = artifact_lists(registry.load(production.version)[0], split, answers)
    snapshot = open_store(settings.data_dir).load(snapshot_id)
    laps("offline")

    served_ndcg, offline_ndcg = served[f"ndcg@{K}"], offline[f"ndcg@{K}"]
    return {
        f"served_ndcg@{K}": served_ndcg,
        f"offline_ndcg@{K}": offline_ndcg,
        "users": len(test_users),
        "model": production.algorithm,
        "gap": (served_ndcg - offline_ndcg) / offline_ndcg if offline_ndcg else float("nan"),
        f"artifact_ndcg@{K}": artifact_ndcg,
        "same_lists": same_lists,
        "sources": dict(sorted(Counter(a[1] for a in answers).items())),
        "cold_users": len(split.cold_users),
        "model_version": production.version,
        "snapshot_id": snapshot_id,
        "same_training_data": same_training_data(snapshot, split),
        "same_recipe": json.loads(json.dumps(recipe)) == production.params,
        "cutoff": str(split.cutoff),
        "events_replayed": replayed,
        "source": history.source,
        "offline_models": {name: m[f"ndcg@{K}"] for name, m in board["models"].items()},
        # What the gate's rule would pick on this split (the DAG's gate judges on the
        # snapshot's per-user split instead).
        "leaderboard_served": board.get("served"),
        "seconds": laps.seconds,
    }


def add_stack_arguments(parser: argparse.ArgumentParser, data_dir: Path) -> None:
    """The options that say where the run's data, Redis, broker and topic are."""
    parser.add_argument("--data-dir", type=Path, default=data_dir, help="emptied first")
    parser.add_argument("--redis-url", help="a running Redis (default: start one)")
    parser.add_argument("--bootstrap", help="a running broker, host:port (default: start one)")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"default {DEFAULT_TOPIC}")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")


def check_stack_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.redis_url is None) != (args.bootstrap is None):
        parser.error("give both --redis-url and --bootstrap, or neither")


def fresh_dir(path: Path) -> Path:
    path = path.resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


Evaluation = Callable[[Path, dict[str, str], list[Server]], dict]


def on_stack(args: argparse.Namespace, name: str, evaluate: Evaluation) -> dict | None:
    """``evaluate(data_dir, env, servers)`` on the stack the arguments ask for (a fresh
    ``--data-dir``; ``start_stack``), every server stopped at the end; None, after saying
    why on stderr, when it fails with an ``EvalError``."""
    data_dir = fresh_dir(args.data_dir)
    servers: list[Server] = []  # stopped in reverse order
    try:
        env = start_stack(data_dir, args.redis_url, args.bootstrap, args.topic, servers)
        return evaluate(data_dir, env, servers)
    except EvalError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return None
    finally:
        for server in reversed(servers):
            server.stop(timeout=lifecycle.STOP_TIMEOUT)


def start_stack(
    data_dir: Path,
    redis_url: str | None,
    bootstrap: str | None,
    topic: str,
    servers: list[Server],
) -> dict[str, str]:
    """The environment every step runs in: Redis and a broker started on free loopback
    ports (put in ``servers``, for the caller to stop) unless ``redis_url`` and
    ``bootstrap`` name running ones, the data under ``data_dir``, the events on ``topic``."""
    if redis_url is None or bootstrap is None:
        redis = redis_server(free_port(), data_dir / "redis").start()
        servers.append(redis)
        broker = kafka_broker(free_port(), data_dir / "kafka").start()
        servers.append(broker)
        redis_url = f"redis://{LOOPBACK}:{redis.port}/0"
        bootstrap = f"{LOOPBACK}:{broker.port}"
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RECSYS_DATA_DIR": str(data_dir),
        "SNAPSHOT_URI": "",  # snapshots under the data dir, whatever the shell says
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP": bootstrap,
        "KAFKA_TOPIC": topic,
        "INGEST_BATCH_SECONDS": "1",
        "INGEST_METRICS_PORT": "0",
        "RECSYS_TASK_RETRIES": os.environ.get("RECSYS_TASK_RETRIES", "0"),
        "SERVICE_URL": "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.eval_served",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--ratings",
        type=Path,
        help="MovieLens ratings file (default: MovieLens-100K's u.data, fetched hash-checked)",
    )
    parser.add_argument(
        "--train-share",
        type=float,
        default=0.8,
        help="share of the events before the cut (default 0.8)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=DEFAULT_MODELS,
        help=f"the DAG's models param, and the leaderboard's (default {' '.join(DEFAULT_MODELS)})",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="exit status 1 when served differs from offline by more than this share",
    )
    add_stack_arguments(parser, EVAL_DATA_DIR)
    parser.add_argument(
        "--threads", type=int, default=8, help="requests in flight at once (default 8)"
    )
    args = parser.parse_args(argv)
    if not 0 < args.train_share < 1:
        parser.error("--train-share must be in (0, 1)")
    check_stack_arguments(parser, args)

    if args.ratings is None:
        from devstack.ml100k import fetch_ml100k

        args.ratings = fetch_ml100k()
    result = on_stack(
        args,
        "eval-served",
        lambda data_dir, env, servers: evaluate_served(
            args.ratings,
            data_dir=data_dir,
            env=env,
            train_share=args.train_share,
            models=args.models,
            workers=args.workers,
            threads=args.threads,
            servers=servers,
        ),
    )
    if result is None:
        return 2
    print(json.dumps(result), flush=True)
    if not abs(result["gap"]) <= args.tolerance:
        print(
            f"eval-served: served NDCG@{K} {result[f'served_ndcg@{K}']:.4f} is not within "
            f"{args.tolerance:.0%} of offline {result[f'offline_ndcg@{K}']:.4f}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    lifecycle.run_main(main)
