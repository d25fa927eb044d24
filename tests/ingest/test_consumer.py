"""The consumer against a real Tansu broker: kill -9, SIGTERM, a broker restart, bad input.

The consumer runs as its own process (``python -m ingest consume``), exactly as deployed,
so a kill is a real kill. The oracle is the produced stream itself: every line the grammar
accepts must be in the journal exactly once, every line it rejects in the quarantine.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from kafka import KafkaConsumer, TopicPartition

from devstack.servers import LOOPBACK, Server, free_port, kafka_broker
from ingest.events import Rejected, parse_line
from ingest.journal import Journal
from ingest.snapshot import SnapshotStore
from simulator.traffic import produce, simulate_lines

REPO = Path(__file__).resolve().parents[2]

# Lines no grammar should accept, and none should crash the consumer.
HOSTILE = [
    b"",
    b"   ",
    b"\x00\xff\xfe garbage \x80",
    b"2025-10-17T01:38:54,1,GET /rate/heat+1995=4" + b"x" * (70 * 1024),  # over 64 KiB
    b"2025-10-17T01:38:5",  # truncated
    "2025-10-17T01:38:54,1,GET /rate/h\u00e9at+1995=4".encode("latin-1"),  # not UTF-8
    b"2025-10-17T01:38:54,1,GET /teleport/heat+1995",
    b"2025-10-17T01:38:54,-4,GET /rate/heat+1995=4",
    b"2025-10-17T01:38:54,1,GET /data/m/heat+1995/-1.mpg",
    b"9999-10-17T01:38:54,1,GET /create_account",
]


def stream(users: int = 150, days: float = 4, seed: int = 5) -> list[bytes]:
    lines = list(simulate_lines(users=users, movies=120, days=days, seed=seed, noise=0.02))
    rng = random.Random(seed)
    for bad in HOSTILE:
        lines.insert(rng.randrange(len(lines)), bad)
    return lines


def expected(lines: list[bytes]) -> tuple[Counter, Counter]:
    kinds: Counter = Counter()
    reasons: Counter = Counter()
    for line in lines:
        parsed = parse_line(line)
        if isinstance(parsed, Rejected):
            reasons[parsed.reason.value] += 1
        else:
            kinds[type(parsed).__name__.lower()] += 1
    return kinds, reasons


def consumer_env(data_dir: Path, bootstrap: str, topic: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RECSYS_DATA_DIR": str(data_dir),
        "KAFKA_BOOTSTRAP": bootstrap,
        "KAFKA_TOPIC": topic,
        "KAFKA_GROUP": f"test-{uuid.uuid4().hex[:8]}",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "INGEST_METRICS_PORT": "0",
        "INGEST_BATCH_SIZE": "3000",
        "INGEST_BATCH_SECONDS": "1",
        **extra,
    }


def start_consumer(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ingest", "consume", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def journaled(data_dir: Path, topic: str) -> int:
    """Offsets durably covered so far (accepted and rejected alike)."""
    return sum(
        last - first + 1 for first, last in Journal(data_dir, topic).offset_ranges().values()
    )


def wait_until(condition, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"consumer exited {proc.returncode}:\n{err.decode()[-3000:]}")
        time.sleep(0.1)
    pytest.fail("timed out")


def assert_journal_is_the_stream(data_dir: Path, topic: str, lines: list[bytes]) -> None:
    """Each produced line exactly once: accepted ones in the journal, rejected in quarantine."""
    journal = Journal(data_dir, topic)
    table, rejected = journal.read()
    keys = list(zip(table["partition"].to_pylist(), table["offset"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys)), "an event was journaled twice"
    kinds, reasons = expected(lines)
    assert Counter(table["kind"].to_pylist()) == kinds
    assert rejected == reasons
    quarantined = [
        json.loads(line)
        for path in journal.quarantine_dir.rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert Counter(q["reason"] for q in quarantined) == reasons
    assert len(keys) + len(quarantined) == len(lines)


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, bootstrap: str, topic: str
) -> None:
    lines = stream()
    assert produce(lines, bootstrap, topic) == len(lines)
    env = consumer_env(tmp_path / "data", bootstrap, topic)
    rng = random.Random(11)
    kills = 0
    while journaled(tmp_path / "data", topic) < len(lines) and kills < 4:
        proc = start_consumer(env)
        before = journaled(tmp_path / "data", topic)
        # Let it make some progress, then kill it without warning somewhere in a batch.
        wait_until(lambda b=before: journaled(tmp_path / "data", topic) > b, 60, proc)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 2, "the stream was consumed before the consumer could be killed twice"

    last = start_consumer(env, "--idle", "3", "--snapshot")
    _, err = last.communicate(timeout=180)
    assert last.returncode == 0, err.decode()[-3000:]
    assert_journal_is_the_stream(tmp_path / "data", topic, lines)

    # Idempotence: a clean, uninterrupted consumption yields the very same snapshot.
    clean_env = consumer_env(tmp_path / "clean", bootstrap, topic)
    clean = start_consumer(clean_env, "--idle", "3", "--snapshot")
    _, err = clean.communicate(timeout=180)
    assert clean.returncode == 0, err.decode()[-3000:]
    killed_manifest = SnapshotStore(tmp_path / "data").manifest()
    clean_manifest = SnapshotStore(tmp_path / "clean").manifest()
    assert killed_manifest.content_hash == clean_manifest.content_hash
    assert killed_manifest.rows == clean_manifest.rows
    assert killed_manifest.offsets == clean_manifest.offsets


def metric(text: str, name: str, **labels: str) -> float:
    wanted = name + (
        "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
    )
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{wanted} not exported")


def test_sigterm_finishes_the_batch_commits_and_exports_metrics(
    tmp_path: Path, bootstrap: str, topic: str
) -> None:
    lines = stream(users=80, days=3, seed=8)
    produce(lines, bootstrap, topic)
    port = free_port()
    env = consumer_env(
        tmp_path,
        bootstrap,
        topic,
        INGEST_METRICS_PORT=str(port),
        INGEST_BATCH_SIZE="10000000",  # one batch, held open until the deadline or SIGTERM
        INGEST_BATCH_SECONDS="600",
    )
    proc = start_consumer(env)
    url = f"http://{LOOPBACK}:{port}/metrics"

    def scraped_all() -> bool:
        try:
            text = requests.get(url, timeout=2).text
        except requests.ConnectionError:
            return False
        return "ingest_rejected_total" in text and sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("ingest_rejected_total{")
        ) == sum(expected(lines)[1].values())

    wait_until(scraped_all, 90, proc)
    assert journaled(tmp_path, topic) == 0, "the batch should still be open"
    text = requests.get(url, timeout=2).text
    # Read but not yet durable counts as lag: a crash now would have to re-read all of it.
    lag = metric(text, "ingest_consumer_lag", partition="0") + metric(
        text, "ingest_consumer_lag", partition="1"
    )
    assert lag == len(lines)
    _, reasons = expected(lines)
    for reason, count in reasons.items():
        assert metric(text, "ingest_rejected_total", reason=reason) == count
    assert metric(text, "ingest_last_snapshot_age_seconds") == -1  # none cut yet
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    stats = json.loads(out.decode().splitlines()[-1])
    assert stats["consumed"] == len(lines)
    assert_journal_is_the_stream(tmp_path, topic, lines)

    # The commit happened, and it agrees with the journal.
    check = KafkaConsumer(bootstrap_servers=bootstrap, group_id=env["KAFKA_GROUP"])
    try:
        positions = Journal(tmp_path, topic).positions()
        for partition, position in positions.items():
            assert check.committed(TopicPartition(topic, partition)) == position
    finally:
        check.close()


@pytest.fixture
def durable_broker(tmp_path: Path, s3: Server) -> Iterator[Server]:
    """A broker whose log lives in a local S3, so a restart keeps it (as Kafka would)."""
    broker = kafka_broker(free_port(), tmp_path / "kafka", s3=s3).start()
    yield broker
    broker.stop()


def test_broker_going_away_and_coming_back(tmp_path: Path, durable_broker: Server) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    bootstrap = f"{LOOPBACK}:{durable_broker.port}"
    topic = "movielog"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    lines = stream(users=120, days=3, seed=9)
    half = len(lines) // 2
    produce(lines[:half], bootstrap, topic)

    env = consumer_env(tmp_path / "data", bootstrap, topic)
    proc = start_consumer(env)
    wait_until(lambda: journaled(tmp_path / "data", topic) == half, 90, proc)

    durable_broker.stop()
    time.sleep(8)  # longer than a session: the consumer must ride it out, not exit
    assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
    durable_broker.start()

    produce(lines[half:], bootstrap, topic)
    wait_until(lambda: journaled(tmp_path / "data", topic) == len(lines), 120, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert_journal_is_the_stream(tmp_path / "data", topic, lines)


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the consumer catches it."""


def test_crash_between_write_and_commit_is_not_replayed_twice(
    tmp_path: Path, bootstrap: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact window kill -9 rarely hits: segments renamed into place, offsets not yet
    committed. The restarted consumer must resume from the journal, not the commit."""
    from dataclasses import replace

    from ingest.consumer import Consumer
    from ingest.settings import Settings

    lines = stream(users=60, days=2, seed=12)
    produce(lines, bootstrap, topic)
    with monkeypatch.context() as patched:
        for key, value in consumer_env(tmp_path, bootstrap, topic).items():
            patched.setenv(key, value)
        settings = replace(Settings.from_env(), batch_size=len(lines) // 3)

    def die(*_: object, **__: object) -> None:
        raise Crash

    with monkeypatch.context() as patched:
        patched.setattr(KafkaConsumer, "commit", die)
        with pytest.raises(Crash):
            Consumer(settings).run(idle_seconds=3)
    assert 0 < journaled(tmp_path, topic) < len(lines)

    # Other batch boundaries: re-reading would write overlapping segments, not overwrite them.
    Consumer(replace(settings, batch_size=len(lines) // 2 + 7)).run(idle_seconds=3)
    assert_journal_is_the_stream(tmp_path, topic, lines)


def test_two_consumers_in_one_group_split_the_partitions_without_overlap(
    tmp_path: Path, bootstrap: str, topic: str
) -> None:
    """A second member joins mid-stream: partitions move (revoked ones are flushed first),
    both members then write, and together they journal each event exactly once."""
    lines = stream(users=150, days=4, seed=13)
    half = len(lines) // 2
    produce(lines[:half], bootstrap, topic)
    env = consumer_env(tmp_path / "data", bootstrap, topic, INGEST_BATCH_SIZE="500")
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = []
    for log in logs:
        with log.open("wb") as sink:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "ingest", "consume"],
                    env=env,
                    cwd=REPO,
                    stdout=subprocess.DEVNULL,
                    stderr=sink,
                )
            )
        wait_until(lambda log=log: "assigned {" in log.read_text(), 60, procs[-1])
    # After the rebalance each member owns one partition.
    wait_until(lambda: all(log.read_text().count("assigned {") >= 1 for log in logs), 60)
    produce(lines[half:], bootstrap, topic)
    wait_until(lambda: journaled(tmp_path / "data", topic) == len(lines), 120, procs[0])
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc, log in zip(procs, logs, strict=True):
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert_journal_is_the_stream(tmp_path / "data", topic, lines)
    owned = []
    for log in logs:
        after_rebalance = log.read_text().rsplit("assigned {", 1)[1]
        owned.append({int(p.split(":")[0]) for p in after_rebalance.split("}")[0].split(", ")})
        assert "batch durable" in after_rebalance, "a member took partitions but wrote nothing"
    assert sorted(owned, key=min) == [{0}, {1}]
