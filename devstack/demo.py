"""``make demo``: the whole system on this machine, from an empty directory to a live service.

1. start Redis and a Kafka-protocol broker (Tansu) on loopback ports;
2. simulate a few thousand users' watch/rate traffic into the ``movielog`` topic;
3. consume it into the journal and cut a snapshot (``python -m ingest``);
4. run the ``recsys_retrain`` Airflow DAG with ``dag.test()``: train, evaluate, gate,
   precompute, publish;
5. serve ``GET /recommend/<userid>`` with gunicorn on 127.0.0.1:8082 (Swagger UI at
   ``/docs``) until stopped, showing a live line of what it answers; its request log (one
   JSON line per request) goes to ``<data-dir>/requests.log``, not to the terminal;
6. run the refresher (``python -m refresher run``): a user's new watch or rating on the topic
   changes their answer within a second (its log: ``<data-dir>/refresher.log``).

``--observe`` (``make observe``) also runs the ingest consumer and a Prometheus server that
scrapes both with the production config and alert rules (``devstack.observe``).

Ctrl-C, SIGTERM and SIGHUP alike stop everything it started (``devstack.lifecycle``): each
child runs in a session of its own and is stopped in order, SIGTERM first.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from contracts import locations
from devstack import lifecycle, livestats, observe
from devstack.lifecycle import say
from devstack.servers import (
    LOOPBACK,
    Server,
    env_for,
    free_port,
    kafka_broker,
    redis_server,
)

REPO = Path(__file__).resolve().parent.parent


def step(message: str) -> None:
    say(f"\n==> {message}")


def run(argv: list[str], env: dict[str, str], log: Path | None = None) -> None:
    """Run a step (stopped with the demo if the demo is stopped); with ``log``, its chatter
    goes to that file and only its last line is shown."""
    if log is None:
        code = lifecycle.run_step(argv, env)
    else:
        with log.open("w") as out:
            code = lifecycle.run_step(argv, env, stdout=out)
        lines = log.read_text().splitlines()
        print("\n".join(lines[-1:] if code == 0 else lines[-40:]))
        print(f"    (full log: {log})", flush=True)
    if code != 0:
        raise subprocess.CalledProcessError(code, argv)


def create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def seed_snapshot(
    env: dict[str, str],
    *,
    users: int,
    movies: int,
    days: int,
    seed: int,
    log_dir: Path | None = None,
) -> None:
    """Simulated traffic -> broker (topic $KAFKA_TOPIC) -> validated journal -> a snapshot.
    With ``log_dir`` each step's chatter goes to a file there instead of the terminal."""
    topic = env["KAFKA_TOPIC"]
    create_topic(env["KAFKA_BOOTSTRAP"], topic)
    simulate = [
        *("--users", str(users), "--movies", str(movies), "--days", str(days)),
        *("--seed", str(seed), "--kafka", env["KAFKA_BOOTSTRAP"], "--topic", topic),
    ]
    logs = (None, None) if log_dir is None else (log_dir / "simulate.log", log_dir / "consume.log")
    run([sys.executable, "-m", "simulator.traffic", *simulate], env, log=logs[0])
    consume = ["consume", "--idle", "3", "--snapshot"]
    run([sys.executable, "-m", "ingest", *consume], env, log=logs[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--movies", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8082, help="service port")
    parser.add_argument("--data-dir", type=Path, default=REPO / "var" / "demo")
    parser.add_argument(
        "--no-serve", action="store_true", help="stop after publishing (for smoke tests)"
    )
    parser.add_argument(
        "--observe",
        action="store_true",
        help="also run the ingest consumer and a Prometheus server scraping it and the service",
    )
    parser.add_argument(
        "--prometheus-port", type=int, default=9090, help="with --observe (default 9090)"
    )
    parser.add_argument(
        "--live-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often the live line is refreshed (default 5)",
    )
    args = parser.parse_args(argv)

    data_dir = args.data_dir.resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    python = sys.executable
    servers: list[Server] = []  # stopped in reverse order
    try:
        step("starting Redis and the Kafka-protocol broker (Tansu) on loopback")
        redis = redis_server(free_port(), data_dir / "redis").start()
        servers.append(redis)
        broker = kafka_broker(free_port(), data_dir / "kafka").start()
        servers.append(broker)
        env = {
            **env_for(redis, broker),
            "RECSYS_DATA_DIR": str(data_dir),
            "KAFKA_TOPIC": locations.DEFAULT_TOPIC,
            "PYTHONPATH": str(REPO),
            "INGEST_BATCH_SECONDS": "2",
        }
        print(f"    REDIS_URL={env['REDIS_URL']}  KAFKA_BOOTSTRAP={env['KAFKA_BOOTSTRAP']}")

        step(f"simulating {args.users} users x {args.movies} movies over {args.days} days")
        seed_snapshot(env, users=args.users, movies=args.movies, days=args.days, seed=args.seed)

        step("running the recsys_retrain Airflow DAG (dag.test): train, evaluate, gate, publish")
        run([python, "-m", "devstack.retrain"], env, log=data_dir / "retrain.log")
        run([python, "-m", "precompute", "status"], env)
        if args.no_serve:
            return 0

        step(f"serving on http://{LOOPBACK}:{args.port} (Ctrl-C stops everything)")
        requests_log = data_dir / "requests.log"
        servers.append(serve(env, args.port, requests_log))
        servers.append(refresher := refresh(env, data_dir))
        if args.observe:
            servers.extend(watch(env, args.port, refresher.port, args.prometheus_port, data_dir))
        base = f"http://{LOOPBACK}:{args.port}"
        print(
            f"\n    try:  curl {base}/recommend/{sample_user(data_dir)}"
            f"\n    API:  {base}/docs  (Swagger UI: read and try every operation)"
            f"\n    request log: {requests_log}  (one JSON line per request)",
            flush=True,
        )
        if args.observe:
            print(observe.banner(f"http://{LOOPBACK}:{args.prometheus_port}"), flush=True)
        return follow(servers, requests_log, args.live_every)
    finally:
        if servers:
            step("stopping " + ", ".join(server.name for server in reversed(servers)))
        for server in reversed(servers):
            server.stop(timeout=lifecycle.STOP_TIMEOUT)


def serve(env: dict[str, str], port: int, requests_log: Path) -> Server:
    """``python -m service`` (gunicorn) on ``port``: request log (stdout) to ``requests_log``;
    gunicorn's own log (stderr: start-up, warnings, errors) to the terminal."""
    service = Server(
        "service",
        [sys.executable, "-m", "service"],
        port,
        requests_log,
        env={**env, "SERVICE_BIND": f"{LOOPBACK}:{port}"},
        stderr_to_terminal=True,
    )
    return service.start(timeout=30)


def refresh(env: dict[str, str], data_dir: Path) -> Server:
    """``python -m refresher run``: new events change users' lists between retrains; its
    /metrics on a free port (what the start waits for), its log to ``refresher.log``."""
    port = free_port()
    refresher = Server(
        "refresher",
        [sys.executable, "-m", "refresher", "run"],
        port,
        data_dir / "refresher.log",
        env={**env, "REFRESH_METRICS_PORT": str(port)},
    )
    return refresher.start(timeout=60)


def watch(
    env: dict[str, str], service_port: int, refresher_port: int, port: int, data_dir: Path
) -> list[Server]:
    """The ingest consumer (its /metrics on a free port) and Prometheus scraping it, the
    service and the refresher; both are returned as soon as they listen."""
    metrics_port = free_port()
    consumer = Server(
        "consumer",
        [sys.executable, "-m", "ingest", "consume"],
        metrics_port,
        data_dir / "consumer.log",
        env={**env, "INGEST_METRICS_PORT": str(metrics_port)},
    ).start(timeout=60)
    targets = {
        observe.SERVICE_JOB: f"{LOOPBACK}:{service_port}",
        observe.INGEST_JOB: f"{LOOPBACK}:{metrics_port}",
        observe.REFRESHER_JOB: f"{LOOPBACK}:{refresher_port}",
    }
    try:
        prometheus = observe.prometheus_server(port, data_dir / "prometheus", targets).start(60)
    except BaseException:
        consumer.stop()
        raise
    return [consumer, prometheus]


def follow(servers: list[Server], requests_log: Path, every: float) -> int:
    """The live line until stopped, which is how a demo ends (exit status 0), or until a
    server dies by itself (exit status 1)."""
    live = livestats.LiveLine(requests_log, every)
    try:
        while True:
            deadline = time.monotonic() + every
            while time.monotonic() < deadline:
                dead = [server for server in servers if not server.alive]
                if dead:
                    live.close()
                    names = ", ".join(f"{s.name} (log: {s.log_path})" for s in dead)
                    print(f"exited by itself: {names}", file=sys.stderr)
                    return 1
                time.sleep(min(0.5, every))
            live.tick()
    except KeyboardInterrupt:  # lifecycle.Stopped: SIGINT, SIGTERM or SIGHUP
        return 0
    finally:
        live.close()


def sample_user(data_dir: Path) -> int:
    from ingest.snapshot import SnapshotStore

    ratings = SnapshotStore(data_dir).load().ratings
    return int(ratings["user_id"].iloc[len(ratings) // 2])


if __name__ == "__main__":
    lifecycle.run_main(main)
