"""``make demo``: the whole system on this machine, from an empty directory to a live service.

1. start Redis and a Kafka-protocol broker (Tansu) on loopback ports;
2. simulate a few thousand users' watch/rate traffic into the ``movielog`` topic;
3. consume it into the journal and cut a snapshot (``python -m ingest``);
4. run the ``recsys_retrain`` Airflow DAG with ``dag.test()``: train, evaluate, gate,
   precompute, publish;
5. serve ``GET /recommend/<userid>`` with gunicorn on 127.0.0.1:8082 until Ctrl-C,
   then stop everything it started.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from contracts import locations
from devstack.servers import LOOPBACK, env_for, free_port, kafka_broker, redis_server, wait_for_port

REPO = Path(__file__).resolve().parent.parent


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def run(argv: list[str], env: dict[str, str], log: Path | None = None) -> None:
    """Run a step; with ``log``, its chatter goes to that file and only its last line is shown."""
    if log is None:
        subprocess.run(argv, env=env, cwd=REPO, check=True)
        return
    with log.open("w") as out:
        done = subprocess.run(
            argv, check=False, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    lines = log.read_text().splitlines()
    print("\n".join(lines[-1:] if done.returncode == 0 else lines[-40:]))
    print(f"    (full log: {log})", flush=True)
    done.check_returncode()


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
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--movies", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8082, help="service port")
    parser.add_argument("--data-dir", type=Path, default=REPO / "var" / "demo")
    parser.add_argument(
        "--no-serve", action="store_true", help="stop after publishing (for smoke tests)"
    )
    args = parser.parse_args(argv)

    data_dir = args.data_dir.resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    python = sys.executable
    servers = []
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
        env["SERVICE_BIND"] = f"{LOOPBACK}:{args.port}"
        service = subprocess.Popen([python, "-m", "service"], env=env, cwd=REPO)
        wait_for_port(args.port, timeout=30)
        user = sample_user(data_dir)
        print(f"\n    try:  curl http://{LOOPBACK}:{args.port}/recommend/{user}\n", flush=True)
        try:
            service.wait()
        except KeyboardInterrupt:
            service.terminate()
            service.wait(timeout=15)
    finally:
        for server in reversed(servers):
            server.stop()
    return 0


def sample_user(data_dir: Path) -> int:
    from ingest.snapshot import SnapshotStore

    ratings = SnapshotStore(data_dir).load().ratings
    return int(ratings["user_id"].iloc[len(ratings) // 2])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        time.sleep(0.1)
        sys.exit(130)
