"""``make bench-refresh``: from a watch on the topic to the service answering the changed list.

1. Redis and a Tansu broker on free loopback ports; a simulated world's first ``--days``
   produced, consumed by the real consumer, cut, EASE trained on it and published
   (``precompute.steps.publish``); the service (gunicorn, ``python -m service``) and the
   refresher (``refresher.Refresher``, in a thread) started.
2. The world's next day replayed onto the topic at the simulator's busiest rate: the
   events per second of its busiest minute (``--rate`` overrides), for ``--seconds``.
3. Meanwhile probes: a user's current answer is read from the service, a watch of its first
   movie is sent; the probe is answered when the service's list no longer holds that movie
   (a watched movie leaves the list). ``event_to_answer`` is from the send (the broker's
   acknowledgement) to that answer.
4. Throughput: ``--bursts`` times, a burst of one watch each for ``--burst`` users is put
   on the topic with the refresher stopped, then a refresher (``--threads`` ranking threads,
   PRECOMPUTE_THREADS: as deployed, the CPU count) is started and refreshes them in full
   batches; its rate is those users over its busy seconds. The baseline, timed once right
   after each burst: the bare scoring of the same numbers of users in the same batch sizes
   (``FactorModel.score_block`` of fit-time factors, seen movies excluded,
   ``training.topn.top_k``). ``users_per_s`` and ``bare_users_per_s`` are each side's median
   over the bursts (one timing per burst each), ``ratio`` the first over the second;
   ``burst_ratios`` are the bursts' own, for the spread.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from contracts import locations
from devstack.eval_served import start_service
from devstack.servers import LOOPBACK, REPO, Server, free_port, kafka_broker, redis_server
from ingest.consumer import Consumer
from ingest.journal import Journal
from ingest.settings import Settings as IngestSettings
from ingest.snapshot import SnapshotStore
from precompute import steps
from precompute.settings import Settings as PrecomputeSettings
from refresher.refresher import Refresher
from refresher.settings import Settings
from simulator.traffic import World, produce
from training.registry import ModelRegistry
from training.settings import Settings as TrainingSettings
from training.topn import exclude_seen, top_k
from training.train import train

log = logging.getLogger("bench.refresh")

WORKERS = 2  # the service's gunicorn workers, as deployed (WEB_CONCURRENCY)


def busiest_rate(times: list[float]) -> float:
    """Events per second in the busiest minute of a stream (event times in seconds)."""
    minutes = Counter(int(t // 60) for t in times)
    return max(minutes.values()) / 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.refresh", description=__doc__)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--movies", type=int, default=2000)
    parser.add_argument("--days", type=float, default=6)
    parser.add_argument("--seconds", type=float, default=60, help="replay this long")
    parser.add_argument("--rate", type=float, default=None, help="events/s (default: busiest)")
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--burst", type=int, default=3000, help="users in the throughput burst")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="the refresher's ranking threads (PRECOMPUTE_THREADS; default: as deployed, the CPUs)",
    )
    parser.add_argument(
        "--bursts", type=int, default=15, help="bursts; each side's median is reported"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp:
        root = Path(tmp)
        redis = redis_server(free_port(), root / "redis").start()
        broker = kafka_broker(free_port(), root / "kafka").start()
        servers: list[Server] = [redis, broker]
        try:
            print(json.dumps(run(args, root, redis, broker, servers)))
        finally:
            for server in reversed(servers):
                server.stop()
    return 0


def run(  # noqa: PLR0915 - one scenario, start to finish, reads best in one place
    args: argparse.Namespace, root: Path, redis: Server, broker: Server, servers: list
) -> dict:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    bootstrap, topic = f"{LOOPBACK}:{broker.port}", f"{locations.DEFAULT_TOPIC}-bench"
    redis_url = f"redis://{LOOPBACK}:{redis.port}/0"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()

    world = World.build(args.users, args.movies, seed=3)
    today = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=args.days + 2)
    tagged = list(world.generate(args.days + 1, start, 0.0))
    stamp = (start + timedelta(days=args.days)).isoformat().encode()[:19]
    history = [line for _, line in tagged if line[:19] < stamp]
    replay = [line for kind, line in tagged if line[:19] >= stamp and kind in ("watch", "rate")]
    produce(history, bootstrap, topic)
    ingest = IngestSettings(
        data_dir=root,
        bootstrap=bootstrap,
        topic=topic,
        group=f"bench-{uuid.uuid4().hex[:6]}",
        session_timeout_ms=6000,
        batch_seconds=1.0,
    )
    Consumer(ingest).run(idle_seconds=3)
    snapshot = SnapshotStore(root).cut(Journal(root, topic)).snapshot_id
    meta = train("ease", snapshot, TrainingSettings(data_dir=root))
    precompute = PrecomputeSettings(data_dir=root, redis_url=redis_url)
    steps.publish(meta.version, precompute)

    env = {**os.environ, "PYTHONPATH": str(REPO), "REDIS_URL": redis_url, "REQUEST_LOG": "off"}
    base = start_service(root, env, WORKERS, servers) + "/recommend/"

    settings = Settings(
        precompute=replace(precompute, threads=args.threads),
        bootstrap=bootstrap,
        topic=topic,
        group="bench-refresher",
    )

    def start_refresher() -> tuple[Refresher, threading.Thread]:
        refresher = Refresher(settings)
        thread = threading.Thread(target=refresher.run, daemon=True)
        thread.start()
        return refresher, thread

    refresher, thread = start_refresher()

    times = [
        time.mktime(time.strptime(line.split(b",")[0][:19].decode(), "%Y-%m-%dT%H:%M:%S"))
        for line in replay
    ]
    rate = args.rate or busiest_rate(times)
    model = ModelRegistry(root).load(meta.version)[0]
    probe_users = [int(u) for u in model.user_ids]
    rng = np.random.default_rng(0)
    latencies: list[float] = []
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)

    def ask(user: int) -> list[str]:
        with urllib.request.urlopen(f"{base}{user}", timeout=5) as answer:
            return answer.read().decode().split(",")

    def probe() -> None:
        every = args.seconds / args.probes
        for _ in range(args.probes):
            user = int(rng.choice(probe_users))
            movie = ask(user)[0]
            moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            line = f"{moment},{user},GET /data/m/{movie}/1.mpg".encode()
            producer.send(topic, value=line, key=str(user).encode()).get(timeout=10)
            sent = time.monotonic()
            while movie in ask(user) and time.monotonic() - sent < 120:
                time.sleep(0.02)
            latencies.append(time.monotonic() - sent)
            time.sleep(max(0.0, every - (time.monotonic() - sent)))

    prober = threading.Thread(target=probe, daemon=True)
    started = time.monotonic()
    prober.start()
    sent = 0
    while time.monotonic() - started < args.seconds and sent < len(replay):
        due = int((time.monotonic() - started) * rate)
        for line in replay[sent:due]:
            producer.send(topic, value=line, key=line.split(b",")[1])
        sent = max(sent, min(due, len(replay)))
        time.sleep(0.05)
    producer.flush()
    prober.join(180)
    time.sleep(2)

    # Throughput: --bursts backlogs of one watch for each of --burst users. Each is on the
    # topic before a refresher starts reading it (in production the refresher has its process
    # to itself; here producing it would share this one's interpreter lock with the batches),
    # refreshed in full batches, and set against one bare scoring of the same batch sizes,
    # timed right after. A burst is a tenth of a second of work on this shared machine, so
    # each side's rate is the median over the bursts: one timing per burst on both sides,
    # so a burst hit by the machine's noise weighs the same on each.
    data = refresher._bases[meta.version].data
    burst = probe_users[: args.burst]
    rates: list[tuple[float, float]] = []  # per burst: refresher users/s, bare users/s
    sizes: list[int] = []
    for _ in range(args.bursts):
        refresher.stop()
        thread.join(60)
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        for user in burst:
            movie = model.item_ids[int(rng.integers(len(model.item_ids)))]
            line = f"{moment},{user},GET /data/m/{movie}/1.mpg".encode()
            producer.send(topic, value=line, key=str(user).encode())
        producer.flush()
        refresher, thread = start_refresher()
        stats = refresher.stats
        deadline = time.monotonic() + 300
        while stats.refreshed < len(burst) and time.monotonic() < deadline:
            time.sleep(0.1)
        sizes = list(stats.batch_users)
        bare_started = time.perf_counter()
        for size in sizes:
            rows = rng.integers(0, len(model.user_ids), size)
            scores = model.score_block(rows)
            exclude_seen(scores, data.seen[rows])
            top_k(scores, 20)
        bare_seconds = time.perf_counter() - bare_started
        rates.append(
            (stats.refreshed / max(stats.busy_seconds, 1e-9), sum(sizes) / max(bare_seconds, 1e-9))
        )
    refresher.stop()
    thread.join(60)
    producer.close()
    users_per_s = float(np.median([own_rate for own_rate, _ in rates]))
    bare = float(np.median([bare_rate for _, bare_rate in rates]))
    return {
        "event_to_answer_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "event_to_answer_p99_s": round(float(np.percentile(latencies, 99)), 3),
        "probes": len(latencies),
        "rate_events_per_s": round(rate, 2),
        "events_sent": sent,
        "burst_users": sum(sizes),
        "burst_batches": len(sizes),
        "bursts": len(rates),
        "users_per_s": round(users_per_s, 1),
        "bare_users_per_s": round(bare, 1),
        "ratio": round(users_per_s / bare, 3),
        "burst_ratios": sorted(round(own_rate / bare_rate, 3) for own_rate, bare_rate in rates),
        "world": {"users": args.users, "movies": args.movies, "days": args.days},
    }


if __name__ == "__main__":
    sys.exit(main())
