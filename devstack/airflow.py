"""``make airflow``: Airflow's own UI and scheduler running the project's DAG, on loopback.

1. start Redis and the Kafka-protocol broker (Tansu) on free loopback ports;
2. simulate a small world's traffic, consume it and cut a snapshot (as ``make demo`` does), so
   the DAG has something to train on;
3. run ``airflow standalone`` (API server + UI, scheduler, DAG processor, triggerer) on
   127.0.0.1:8080: LocalExecutor, SQLite metadata DB, parallelism 4 (2 cores), DAGs from
   ``dags/`` unpaused, no examples; every task reaches Redis, the broker and the data directory
   through the same environment variables as in production;
4. wait until it is healthy and has parsed the DAG, print the URL and the credentials
   (admin / admin), and run until Ctrl-C, SIGTERM or SIGHUP, any of which stops everything
   it started (``devstack.lifecycle``).

Executor and database: Airflow 3 has no SequentialExecutor (its config maps it to
LocalExecutor, the default) and ``standalone`` forces a local executor. Airflow 2 refused SQLite
with LocalExecutor; Airflow 3.3 has no such check, SQLite is still its default database, and
parallel tasks (the mapped precompute shards) run fine against it here: enough for one machine
and a handful of tasks. A real deployment uses Postgres.

Credentials: SimpleAuthManager (the auth manager standalone insists on) takes its users from
``[core] simple_auth_manager_users`` (``admin:admin`` = user admin with role admin) and their
passwords from a JSON file; writing ``{"admin": "admin"}`` there before the first start stops it
generating a random password. For local use only: the API listens on loopback only.

Schedule: by default the DAGs keep their schedules, so each one's latest slot runs as soon as
it is parsed, as in production. ``--manual-only`` turns the scheduler's own runs off
(``[scheduler] use_job_schedule``): only runs triggered from the UI or the API happen.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from contracts import locations
from devstack import airflow_api, lifecycle
from devstack.demo import seed_snapshot, step
from devstack.servers import (
    LOOPBACK,
    Server,
    env_for,
    free_port,
    kafka_broker,
    redis_server,
)

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "recsys_retrain"  # the DAG the banner, the e2e test and the screenshot are about
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json"
PARALLELISM = 4
TOPIC = locations.DEFAULT_TOPIC
START_TIMEOUT = 300.0  # seconds: first start migrates the SQLite DB; slow on 2 busy cores


@dataclass(frozen=True)
class World:
    """The simulated traffic the snapshot is cut from (the demo's default size)."""

    users: int = 3000
    movies: int = 2000
    days: int = 30
    seed: int = 7


# A world that starts in a minute, for the e2e test and the screenshot. It is too small for a
# model to beat popularity by the production margin (tests/dags/test_end_to_end.py says why), so the
# gate's margin is relaxed: these runs show Airflow running the DAG, not model quality.
QUICK_WORLD = World(users=600, movies=400, days=15, seed=5)
QUICK_ENV = {
    "GATE_MIN_LIFT": "-0.5",
    "SVD_EPOCHS": "10",
    "PRECOMPUTE_SHARDS": "3",  # mapped tasks run side by side under LocalExecutor + SQLite
    "RECSYS_TASK_RETRIES": "0",  # a failure shows at once instead of after retries
}


@dataclass
class Stack:
    """What ``start`` launched; ``stop`` ends it all, Airflow first."""

    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)  # Redis and the broker
    airflow: Server | None = None

    def stop(self) -> None:
        if self.airflow is not None:
            stop_airflow(self.airflow)
        for server in reversed(self.servers):
            server.stop()


def airflow_env(
    base: dict[str, str],
    home: Path,
    port: int,
    *,
    scheduled: bool = True,
    parallelism: int = PARALLELISM,
) -> dict[str, str]:
    """Airflow's configuration for this stack, as environment variables over ``base``."""
    url = f"http://{LOOPBACK}:{port}"
    return {
        **base,
        # standalone starts its components as `airflow ...` from PATH: this venv's.
        "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{base.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(scheduled),
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(port),
        # Task processes report to the API server; its default URL assumes port 8080.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
        # One secret for every component that signs or checks tokens, fresh per start.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
    }


def write_passwords(home: Path) -> None:
    """SimpleAuthManager's password file with the documented local password, so it does not
    generate (and print) a random one."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / PASSWORDS_FILE
    path.write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}) + "\n")
    path.chmod(0o600)


def airflow_server(env: dict[str, str], home: Path, port: int) -> Server:
    """standalone stops its components on SIGINT only (SIGTERM would orphan them)."""
    argv = [str(Path(sys.prefix) / "bin" / "airflow"), "standalone"]
    return Server(
        "airflow", argv, port, home / "standalone.log", env=env, stop_signal=signal.SIGINT
    )


def stop_airflow(server: Server, grace: float = 15.0) -> None:
    """SIGINT to standalone, which waits for running tasks; after ``grace`` seconds it is
    killed, and whatever is left of its process group is terminated, then killed
    (``Server.stop``)."""
    server.stop(timeout=grace)


def start(
    data_dir: Path,
    port: int,
    world: World = World(),
    *,
    scheduled: bool = True,
    parallelism: int = PARALLELISM,
    extra_env: dict[str, str] | None = None,
) -> Stack:
    """Redis, broker, a snapshot and Airflow on ``port``, all under a fresh ``data_dir``;
    returns once the API answers and the DAG is parsed. ``extra_env`` reaches every task."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    stack = Stack(url=f"http://{LOOPBACK}:{port}")
    try:
        step("starting Redis and the Kafka-protocol broker (Tansu) on loopback")
        redis = redis_server(free_port(), data_dir / "redis").start()
        stack.servers.append(redis)
        broker = kafka_broker(free_port(), data_dir / "kafka").start()
        stack.servers.append(broker)
        base = {
            **env_for(redis, broker),
            "RECSYS_DATA_DIR": str(data_dir),
            "KAFKA_TOPIC": TOPIC,
            "PYTHONPATH": str(REPO),
            "INGEST_BATCH_SECONDS": "2",
            "INGEST_METRICS_PORT": "0",
            **(extra_env or {}),
        }
        print(f"    REDIS_URL={base['REDIS_URL']}  KAFKA_BOOTSTRAP={base['KAFKA_BOOTSTRAP']}")

        step(f"simulating {world.users} users x {world.movies} movies, consuming, snapshotting")
        seed_snapshot(
            base,
            users=world.users,
            movies=world.movies,
            days=world.days,
            seed=world.seed,
            log_dir=data_dir,
        )

        home = data_dir / "airflow"
        step(f"starting airflow standalone on {stack.url} (log: {home / 'standalone.log'})")
        stack.env = airflow_env(base, home, port, scheduled=scheduled, parallelism=parallelism)
        write_passwords(home)
        stack.airflow = airflow_server(stack.env, home, port)  # stop() stops it from now on
        stack.airflow.start(START_TIMEOUT)
        airflow_api.wait_until_healthy(stack.url, START_TIMEOUT)
        api = airflow_api.session(stack.url, ADMIN_USER, ADMIN_PASSWORD)
        airflow_api.wait_for_dag(api, stack.url, DAG_ID, START_TIMEOUT)
    except BaseException:
        stack.stop()
        raise
    return stack


@contextlib.contextmanager
def running(data_dir: Path, port: int, world: World = World(), **options) -> Iterator[Stack]:
    """``start`` as a context manager: the stack stops however the block ends."""
    stack = start(data_dir, port, world, **options)
    try:
        yield stack
    finally:
        stack.stop()


def banner(stack: Stack) -> str:
    url = stack.url
    login = f'{{"username": "{ADMIN_USER}", "password": "{ADMIN_PASSWORD}"}}'
    return f"""
    Airflow UI:   {url}/dags/{DAG_ID}   user {ADMIN_USER}, password {ADMIN_PASSWORD}
    Trigger a run with the UI's Trigger button, or through the REST API:
      TOKEN=$(curl -s -X POST {url}/auth/token -H 'Content-Type: application/json' \\
          -d '{login}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
      curl -X POST {url}/api/v2/dags/{DAG_ID}/dagRuns -H "Authorization: Bearer $TOKEN" \\
           -H 'Content-Type: application/json' -d '{{"logical_date": null}}'
    Task logs: {stack.env["AIRFLOW_HOME"]}/logs   Ctrl-C stops everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.airflow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=8080, help="UI / API port (default 8080)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "var" / "airflow")
    parser.add_argument("--users", type=int, default=World.users)
    parser.add_argument("--movies", type=int, default=World.movies)
    parser.add_argument("--days", type=int, default=World.days)
    parser.add_argument("--seed", type=int, default=World.seed)
    parser.add_argument("--parallelism", type=int, default=PARALLELISM)
    parser.add_argument(
        "--manual-only",
        action="store_true",
        help="no scheduled runs: only runs triggered from the UI or the API",
    )
    args = parser.parse_args(argv)

    world = World(args.users, args.movies, args.days, args.seed)
    stack = start(
        args.data_dir.resolve(),
        args.port,
        world,
        scheduled=not args.manual_only,
        parallelism=args.parallelism,
    )
    try:
        print(banner(stack), flush=True)
        airflow = stack.airflow
        assert airflow is not None, "start() returns with Airflow up"
        while airflow.alive:
            time.sleep(1)
        print(f"airflow standalone exited; see {airflow.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # lifecycle.Stopped: SIGINT, SIGTERM or SIGHUP, while serving
        return 0
    finally:
        step("stopping Airflow, the broker and Redis")
        stack.stop()


if __name__ == "__main__":
    # A stop while starting: start() has already stopped its part; exit with the signal's code.
    lifecycle.run_main(main)
