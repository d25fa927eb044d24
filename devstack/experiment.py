"""``make experiment-demo``: a closed loop that proves the A/B machinery on live traffic.

1. Redis and a Kafka-protocol broker on loopback; a simulated world's history through the
   real ingest path into a snapshot;
2. two models trained on it and both published: the neural model (Mult-DAE) and a
   deliberately weak one (random);
3. the real service (gunicorn) with its request log produced to Kafka, and the ingest
   consumer running beside it;
4. a fixed 50/50 experiment ``control`` = random vs ``neural``: rounds of simulated app users
   (``simulator.movieapp``) who call the service and watch what tempts them; after each round
   the online job (``online``) joins what was served with what was watched, and the
   experiment is analysed (``experiments``) exactly as the ``recsys_online`` DAG does;
5. the same two arms as a Thompson-sampling bandit starting at 50/50, its split updated in
   Redis after each round.

Everything lands in ``--data-dir`` (``var/experiment-demo``): each experiment's report
(markdown + PNG plots) under ``experiments/``, the online metrics under ``online/``, and
``summary.json``, whose content is also the last line printed. Ctrl-C, SIGTERM and SIGHUP
alike stop everything it started (``devstack.lifecycle``). The world's users react at
once, so the conversion window is short (ONLINE_WINDOW_HOURS=0.5) and the planned sample
size is set by a large minimum detectable effect (EXPERIMENT_MDE=0.15): a demo in minutes,
not a two-week test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from contracts import locations
from devstack import lifecycle
from devstack.demo import create_topic, seed_snapshot, step
from devstack.servers import LOOPBACK, env_for, free_port, kafka_broker, redis_server, wait_for_port

REPO = Path(__file__).resolve().parent.parent
TOPIC = locations.DEFAULT_TOPIC
REQUEST_TOPIC = locations.DEFAULT_REQUEST_LOG_TOPIC
CONTROL, TREATMENT = "control", "neural"


def closed_loop(args: argparse.Namespace, env: dict[str, str]) -> dict:
    """Steps 2 to 5 above, with the servers already running and ``env`` pointing at them
    (this process's environment is set to it: the libraries read their settings there)."""
    os.environ.update(env)
    import redis

    data_dir = Path(env["RECSYS_DATA_DIR"])
    step("training the neural model and a deliberately weak one (random); publishing both")
    versions = publish_models()
    print(f"    {CONTROL} -> {versions[CONTROL]} (random)  {TREATMENT} -> {versions[TREATMENT]}")

    step(f"starting the service on {LOOPBACK}:{args.port} and the ingest consumer")
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    processes = [
        _background([sys.executable, "-m", "service"], env, logs / "service.log"),
        _background([sys.executable, "-m", "ingest", "consume"], env, logs / "consumer.log"),
    ]
    client = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
    loop = _Loop(args, env, processes[1])
    summary: dict = {"versions": versions, "experiments": {}}
    try:
        wait_for_port(args.port, timeout=30)
        for half, mode in enumerate(("fixed", "bandit")):
            name = f"neural-vs-random-{mode}"
            step(f"experiment {name}: {args.rounds} rounds of {args.visits} app visits")
            # Each experiment gets its own half of the users: an analysis counts only the
            # users first exposed while it ran.
            summary["experiments"][name] = loop.experiment(client, name, mode, versions, half)
    finally:
        client.close()
        for process in processes:
            lifecycle.stop_process(process)
    summary["online_report"] = str(loop.online.out_dir / "report.md")
    (data_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def publish_models() -> dict[str, str]:
    """Random (control) and Mult-DAE (treatment) on the latest snapshot, both published
    (the newest is active; precompute keeps both)."""
    from precompute import steps
    from training.train import train

    weak, good = train("random").version, train("multdae").version
    return {
        CONTROL: steps.publish(weak).version,
        TREATMENT: steps.publish(good).version,
    }


class _Loop:
    """Rounds of app visits, each followed by what the ``recsys_online`` DAG runs."""

    def __init__(
        self, args: argparse.Namespace, env: dict[str, str], consumer: subprocess.Popen
    ) -> None:
        from online.settings import Settings
        from simulator.traffic import World

        self.args, self.env, self.consumer = args, env, consumer
        self.world = World.build(args.users, args.movies, args.seed)
        self.online = Settings.from_env()
        self.produced = _journal_lines(Path(env["RECSYS_DATA_DIR"]))  # the history so far

    def experiment(self, client, name: str, mode: str, versions: dict[str, str], half: int) -> dict:
        from experiments import review, store
        from experiments.definition import Experiment
        from experiments.settings import Settings
        from simulator.movieapp import MovieApp

        users = np.arange(half, len(self.world.user_ids), 2)
        app = MovieApp(self.world, self.env["SERVICE_URL"], seed=self.args.seed, users=users)
        weights = {CONTROL: 50, TREATMENT: 50}
        store.start(client, Experiment(name, dict(versions), weights, mode, control=CONTROL))
        time.sleep(1.5)  # the service re-reads the split every VERSION_REFRESH_SECONDS
        try:
            reviews = [self.round(app, f"round {i + 1}") for i in range(self.args.rounds)]
        finally:
            app.close()
            stopped = store.stop(client)
        assert stopped is not None, f"experiment {name} was started above"
        settings = Settings.from_env()
        outcomes = review.read_outcomes(self.online.users_path)
        analysis, files = review.report_experiment(stopped, outcomes, settings, settings.report_dir)
        return {
            "verdict": analysis.verdict.label,
            "rounds": reviews,
            "split_history": [dict(change.weights) for change in stopped.history],
            "analysis": analysis.as_dict(),
            "files": [str(f) for f in files],
        }

    def round(self, app, label: str) -> dict:
        from experiments.review import review_running
        from online import evaluation as online_evaluation
        from simulator.traffic import produce

        self.produced += produce(app.lines(self.args.visits), self.env["KAFKA_BOOTSTRAP"], TOPIC)
        _wait_for_journal(Path(self.env["RECSYS_DATA_DIR"]), self.produced, self.consumer)
        online = online_evaluation.run(self.online)
        review = review_running(self.online.users_path)
        review.pop("files", None)
        review["online"] = {k: online[k] for k in ("read", "closed", "pending", "watermark")}
        print(f"    {label}: {json.dumps(review)}", flush=True)
        return review


def _background(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A child in a session of its own (a terminal's Ctrl-C reaches only this process, which
    stops it in order), output to ``log``."""
    with log.open("wb") as out:
        return lifecycle.spawn(argv, env, stdout=out, stderr=subprocess.STDOUT)


def _wait_for_journal(
    data_dir: Path, produced: int, consumer: subprocess.Popen, timeout: float = 120
) -> None:
    """Until the journal holds every line produced so far (offsets are consecutive, so the
    journal's next offsets add up to the lines consumed)."""
    deadline = time.monotonic() + timeout
    while (held := _journal_lines(data_dir)) < produced:
        if consumer.poll() is not None:
            raise RuntimeError(f"the ingest consumer exited with {consumer.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"journal behind: {held} of {produced} lines")
        time.sleep(0.5)


def _journal_lines(data_dir: Path) -> int:
    from ingest.journal import Journal

    return sum(Journal(data_dir, TOPIC).positions().values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.experiment", description=__doc__)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--movies", type=int, default=800)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--visits", type=int, default=1000, help="app visits per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per experiment")
    parser.add_argument("--port", type=int, default=0, help="service port (0: a free one)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "var" / "experiment-demo")
    args = parser.parse_args(argv)
    args.port = args.port or free_port()

    data_dir = args.data_dir.resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    servers = []
    try:
        step("starting Redis and the Kafka-protocol broker (Tansu) on loopback")
        servers.append(redis_server(free_port(), data_dir / "redis").start())
        servers.append(kafka_broker(free_port(), data_dir / "kafka").start())
        env = {
            **env_for(*servers),
            "RECSYS_DATA_DIR": str(data_dir),
            "KAFKA_TOPIC": TOPIC,
            "PYTHONPATH": str(REPO),
            "INGEST_BATCH_SECONDS": "1",
            "SERVICE_BIND": f"{LOOPBACK}:{args.port}",
            "SERVICE_URL": f"http://{LOOPBACK}:{args.port}",
            "REQUEST_LOG": "off",  # the lines go to Kafka, where the online job reads them
            "REQUEST_LOG_KAFKA_BOOTSTRAP": env_for(*servers)["KAFKA_BOOTSTRAP"],
            "REQUEST_LOG_KAFKA_TOPIC": REQUEST_TOPIC,
            "ONLINE_WINDOW_HOURS": "0.5",
            "EXPERIMENT_MDE": "0.15",
            "EXPERIMENT_LOOKS": str(args.rounds),  # one look per round: alpha split over them
            "EXPERIMENT_REPORT_BUCKET": "5s",  # the demo lasts about a minute
            "BANDIT_FLOOR": "0.05",
        }
        create_topic(env["KAFKA_BOOTSTRAP"], REQUEST_TOPIC, partitions=1)
        step(f"simulating {args.users} users x {args.movies} movies over {args.days} days")
        history = {"users": args.users, "movies": args.movies, "days": args.days}
        seed_snapshot(env, **history, seed=args.seed, log_dir=data_dir)
        summary = closed_loop(args, env)
    finally:
        for server in reversed(servers):
            server.stop()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    lifecycle.run_main(main)
