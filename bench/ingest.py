"""Ingest throughput: the real consumer against a bare kafka-python loop, same broker, same topic.

``python -m bench.ingest`` (``make bench-ingest``) starts a Tansu broker on loopback, makes a
two-partition topic, produces the simulator's stream into it (its realistic share of malformed
lines included), then alternates, ``--repeats`` times each:

* **full**: ``ingest.consumer.Consumer(settings).run()`` into a fresh temporary data directory
  with a fresh consumer group: consume → validate every line → write Parquet segments and
  quarantine atomically (fsync, rename) → commit offsets;
* **bare**: a ``KafkaConsumer`` that is assigned every partition, seeks to the beginning and
  polls with a large ``max_records`` until it has counted every message, nothing else.

Both clocks start when the consumer owns its partitions and stop when the last message is
done: counted (bare), or its batch durably written and committed (full). The full clock thus
leaves out joining the group (a fixed start-up cost, reported apart as ``full_join_s``) and never
contains the idle wait: the consumer is stopped from its own ``flush`` as soon as every line
is on disk, so ``run(idle_seconds=...)`` only serves as a safety net. Every full run is
checked against an oracle (the grammar applied to the produced lines, and the journal read
back), so a fast run that lost events cannot count.

One JSON line goes to stdout: the medians, their ratio full/bare, every run, the line count
and the consumer settings. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import itertools
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import kafka

from devstack.servers import LOOPBACK, free_port, kafka_broker
from ingest.consumer import Consumer
from ingest.events import Rejected, parse_line
from ingest.journal import Journal
from ingest.settings import Settings
from simulator.traffic import World, produce

PARTITIONS = 2
DEFAULT_LINES = 1_000_000
# Simulated days it takes the default world (3000 users) to say more than --lines lines:
# about 24k lines a day, so 60 days cover 1M with room to spare; the stream is cut there.
DAYS_PER_MILLION = 60.0
BARE_MAX_RECORDS = 1_000_000
SAFETY_IDLE_SECONDS = 30.0  # run() ends by itself only if events went missing
RUN_TIMEOUT_SECONDS = 600.0


def log(message: str) -> None:
    print(f"[bench.ingest] {message}", file=sys.stderr, flush=True)


# --- the stream -------------------------------------------------------------------------


def make_lines(count: int, seed: int) -> tuple[list[bytes], Counter]:
    """The first ``count`` lines of the simulated stream and how many of each kind."""
    days = DAYS_PER_MILLION * max(count, 1) / 1_000_000 + 1
    kinds: Counter = Counter()
    lines = []
    for kind, line in itertools.islice(World.build(seed=seed).generate(days), count):
        kinds[kind.partition(":")[0]] += 1
        lines.append(line)
    if len(lines) < count:
        raise SystemExit(f"the simulated stream has only {len(lines)} lines")
    return lines, kinds


def oracle(lines: list[bytes], settings: Settings) -> tuple[int, Counter, float]:
    """What the grammar makes of the stream: accepted count, rejects by reason, parse-only s."""
    rejected: Counter = Counter()
    scale = settings.scale
    started = time.perf_counter()
    for line in lines:
        parsed = parse_line(line, scale=scale)
        if isinstance(parsed, Rejected):
            rejected[parsed.reason.value] += 1
    seconds = time.perf_counter() - started
    return len(lines) - sum(rejected.values()), rejected, seconds


def create_topic(bootstrap: str, name: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        admin.close()


# --- the two measurements ---------------------------------------------------------------


def bare(bootstrap: str, topic: str, expected: int) -> dict:
    """Count every message of the topic with nothing but kafka-python's poll loop."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        count = 0
        started = time.perf_counter()
        deadline = started + RUN_TIMEOUT_SECONDS
        while count < expected:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"bare loop counted {count} of {expected} in time")
            records = consumer.poll(timeout_ms=500, max_records=BARE_MAX_RECORDS)
            for messages in records.values():
                count += len(messages)
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    if count != expected:
        raise RuntimeError(f"bare loop counted {count} messages, {expected} were produced")
    return {"seconds": seconds, "events_per_s": expected / seconds}


class _TimedConsumer(Consumer):
    """The real consumer, with a clock: started when the group hands it its partitions,
    stopped when the batch that holds the last produced line is durable and committed."""

    def __init__(self, settings: Settings, expected: int):
        super().__init__(settings)
        self.expected = expected
        self.assigned_at: float | None = None
        self.done_at: float | None = None

    def seek_to_journal(self, partitions) -> None:
        if self.assigned_at is None:
            self.assigned_at = time.perf_counter()
        super().seek_to_journal(partitions)

    def flush(self, partitions: set[int] | None = None) -> None:
        super().flush(partitions)
        if self.done_at is None and self.stats.consumed >= self.expected:
            self.done_at = time.perf_counter()
            self.stop()  # no idle wait: everything is on disk


def full(settings: Settings, expected: int, accepted: int, rejected: Counter) -> dict:
    """One run of the real consumer into ``settings.data_dir``, checked against the oracle."""
    consumer = _TimedConsumer(settings, expected)
    called = time.perf_counter()
    stats = consumer.run(idle_seconds=SAFETY_IDLE_SECONDS)
    if consumer.done_at is None or consumer.assigned_at is None:
        raise RuntimeError(f"consumer stopped before every line was journaled: {stats.as_dict()}")
    if (stats.consumed, stats.accepted, Counter(stats.rejected)) != (expected, accepted, rejected):
        raise RuntimeError(f"consumer disagrees with the oracle: {stats.as_dict()}")
    table, journal_rejected = Journal(settings.data_dir, settings.topic).read()
    if table.num_rows != accepted or journal_rejected != rejected:
        raise RuntimeError(f"journal holds {table.num_rows} events, {accepted} were accepted")
    seconds = consumer.done_at - consumer.assigned_at
    return {
        "seconds": seconds,
        "events_per_s": expected / seconds,
        "join_s": consumer.assigned_at - called,
        "segments": stats.segments,
    }


# --- main -------------------------------------------------------------------------------


def crc_impl() -> str:
    """kafka-python checks every record batch's CRC-32C: in C with the ``crc32c`` package,
    else in pure Python, which is most of the cost of a bare consume loop."""
    from kafka.record import util

    return "C" if getattr(util, "crc32c_c", None) is not None else "Python"


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--lines", type=int, default=DEFAULT_LINES)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="instead of timing, run the full path once under cProfile and dump stats here",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # kafka-python warns whenever decoding one fetch blocks its event loop for >0.1 s, which
    # is every fetch at this rate, in both loops alike.
    logging.getLogger("kafka").setLevel(logging.ERROR)

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    broker = kafka_broker(free_port(), workdir / "kafka").start()
    try:
        bootstrap = f"{LOOPBACK}:{broker.port}"
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        base = dataclasses.replace(
            Settings.from_env(), bootstrap=bootstrap, topic=topic, metrics_port=0
        )
        create_topic(bootstrap, topic)

        began = time.perf_counter()
        lines, kinds = make_lines(args.lines, args.seed)
        accepted, rejected, parse_s = oracle(lines, base)
        log(f"{len(lines)} lines {dict(kinds)}; grammar rejects {sum(rejected.values())}")
        produced = produce(lines, bootstrap, topic)
        log(f"produced {produced} lines in {time.perf_counter() - began:.1f}s (with simulation)")
        del lines

        def one_full() -> dict:
            data_dir = workdir / f"data-{uuid.uuid4().hex[:8]}"
            settings = dataclasses.replace(
                base, group=f"bench-{uuid.uuid4().hex[:8]}", data_dir=data_dir
            )
            try:
                return full(settings, produced, accepted, rejected)
            finally:
                shutil.rmtree(data_dir, ignore_errors=True)

        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(one_full)
            profiler.dump_stats(args.profile)
            log(f"profile of one full run in {args.profile}")
            return 0

        full_runs, bare_runs = [], []
        for repeat in range(args.repeats):  # interleaved, so drifting load hits both alike
            bare_runs.append(bare(bootstrap, topic, produced))
            full_runs.append(one_full())
            log(
                f"repeat {repeat + 1}: full {full_runs[-1]['events_per_s']:,.0f}/s, "
                f"bare {bare_runs[-1]['events_per_s']:,.0f}/s"
            )
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    full_median = _median(full_runs, "events_per_s")
    bare_median = _median(bare_runs, "events_per_s")
    settings_used = {
        "batch_size": base.batch_size,
        "batch_seconds": base.batch_seconds,
        "rating_scale": f"{base.scale.low}-{base.scale.high}",
        "partitions": PARTITIONS,
        "group": "fresh per repeat",
    }
    print(
        json.dumps(
            {
                "bench": "ingest",
                "lines": produced,
                "accepted": accepted,
                "rejected": sum(rejected.values()),
                "repeats": args.repeats,
                "full_events_per_s": round(full_median),
                "bare_events_per_s": round(bare_median),
                "ratio": round(full_median / bare_median, 3),
                "ratio_paired_median": round(
                    statistics.median(
                        f["events_per_s"] / b["events_per_s"]
                        for f, b in zip(full_runs, bare_runs, strict=True)
                    ),
                    3,
                ),
                "parse_only_events_per_s": round(produced / parse_s),
                "full_join_s": round(_median(full_runs, "join_s"), 2),
                "full_runs_events_per_s": [round(r["events_per_s"]) for r in full_runs],
                "bare_runs_events_per_s": [round(r["events_per_s"]) for r in bare_runs],
                "settings": settings_used,
                "kafka_python": f"{kafka.__version__}, crc32c in {crc_impl()}",
                "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
                f"Python {platform.python_version()}",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
