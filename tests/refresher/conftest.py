"""The refresher's world, per test module: a topic on the session's broker holding a
simulated stream, its journal and snapshot (written by ingest's own segment builder at the
offsets the broker gave each line), EASE and popularity trained on that snapshot; per test,
a published version in the test's clean Redis. ``World.expected`` is what precompute gives
a user for a history: a new snapshot cut with the extra events, folded into the model,
ranked by ``precompute.bodies``."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis

from contracts import rediskeys
from devstack.servers import LOOPBACK, Server
from ingest.events import Rate, Watch, format_event, parse_line
from ingest.journal import Journal, SegmentBuilder
from ingest.snapshot import SnapshotStore
from precompute import steps
from precompute.bodies import user_bodies
from precompute.settings import Settings as PrecomputeSettings
from refresher.settings import Settings
from simulator.traffic import simulate_lines
from training.factors import FactorModel
from training.foldin import fold_in_users, on_catalogue
from training.registry import ModelRegistry
from training.settings import Settings as TrainingSettings
from training.train import train

# The simulated history's first day: three weeks ago (events past now are refused as future).
START = (datetime.now(UTC) - timedelta(days=21)).replace(
    tzinfo=None, hour=0, minute=0, second=0, microsecond=0
)


TIE = 1e-5  # scores this close (relative to the largest) are float32 noise apart


@dataclass
class World:
    root: Path
    bootstrap: str
    topic: str
    models: dict[str, str] = field(default_factory=dict)  # algorithm -> model version
    catalogue: list[str] = field(default_factory=list)

    def produce(self, lines: list[bytes]) -> dict[int, int]:
        """Send ``lines`` to the topic (keyed by user, one partition per user) and journal
        them at the offsets the broker gave them, through ingest's own builder; returns the
        offset after the last one per partition written to."""
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        try:
            futures = [
                producer.send(self.topic, value=line, key=line.split(b",")[1]) for line in lines
            ]
            producer.flush()
            placed = [f.get(timeout=30) for f in futures]
        finally:
            producer.close()
        builders: dict[int, SegmentBuilder] = {}
        by_partition: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        for meta, line in zip(placed, lines, strict=True):
            by_partition[meta.partition].append((meta.offset, line))
        journal = Journal(self.root, self.topic)
        for partition, rows in by_partition.items():
            builder = builders.setdefault(partition, SegmentBuilder(partition))
            for offset, line in sorted(rows):
                builder.add(offset, parse_line(line), line)
            journal.write(builder)
        return {p: max(offset for offset, _ in rows) + 1 for p, rows in by_partition.items()}

    def precompute(self, redis_url: str, **extra: object) -> PrecomputeSettings:
        return PrecomputeSettings(data_dir=self.root, redis_url=redis_url, **extra)  # type: ignore[arg-type]

    def publish(self, redis_url: str, algorithm: str = "ease") -> str:
        return steps.publish(self.models[algorithm], self.precompute(redis_url)).version

    def settings(self, redis_url: str, **extra: object) -> Settings:
        return Settings(
            precompute=self.precompute(redis_url),
            bootstrap=self.bootstrap,
            topic=self.topic,
            group=f"refresher-{uuid.uuid4().hex[:8]}",
            batch_seconds=0.1,
            **extra,  # type: ignore[arg-type]
        )

    def expected(self, algorithm: str, users: list[int]) -> dict[int, Expected]:
        """Precompute's lists for ``users`` from a snapshot cut now (every event journaled
        so far), with the ``algorithm`` model the world trained, and their scores."""
        store = SnapshotStore(self.root)
        snapshot = store.load(store.cut(Journal(self.root, self.topic)).snapshot_id)
        model, _ = ModelRegistry(self.root).load(self.models[algorithm])
        data = on_catalogue(snapshot.ratings, snapshot.watches, model.item_ids)
        rows = np.flatnonzero(np.isin(data.user_ids, users))
        folded = fold_in_users(model, data)
        expected = {}
        for user, body in user_bodies(folded, data, users=rows):
            row = folded.user_rows(np.array([user]))[0]
            p = folded.user_factors[row].astype(np.float64)
            scores = p @ folded.item_factors.T.astype(np.float64) + folded.item_bias
            expected[user] = Expected(body.decode(), dict(zip(model.item_ids, scores, strict=True)))
        return expected

    def model(self, algorithm: str) -> FactorModel:
        return ModelRegistry(self.root).load(self.models[algorithm])[0]


@dataclass(frozen=True)
class Expected:
    """A list precompute gives, and the (float64) score of every movie for that user."""

    body: str
    scores: dict[str, float]

    def __eq__(self, other: object) -> bool:
        """``other`` (a body) is this list up to exact ties: the float32 products that rank
        (BLAS, blocked by how many users are scored at once) break ties between movies with
        the same exact score either way; any other difference counts."""
        if isinstance(other, Expected):
            other = other.body
        if not isinstance(other, str):
            return False
        mine, theirs = self.body.split(","), other.split(",")
        if len(mine) != len(theirs) or len(set(theirs)) != len(theirs):
            return False
        scale = max(abs(s) for s in self.scores.values()) or 1.0
        return all(
            a == b or (b in self.scores and abs(self.scores[a] - self.scores[b]) <= TIE * scale)
            for a, b in zip(mine, theirs, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]


def rate(user: int, movie: str, stars: int, minutes: float) -> bytes:
    return format_event(
        Rate(START + timedelta(days=9, minutes=minutes), user, movie, stars)
    ).encode()


def watch(user: int, movie: str, minutes: float) -> bytes:
    moment = START + timedelta(days=9, minutes=minutes)
    return format_event(Watch(moment, user, movie, 1)).encode()


def answer(client: redis.Redis, user: int, version: str | None = None) -> str | None:
    """What the service reads for ``user``: the user's list in the active version (None:
    none, the service would answer the cold-start list)."""
    version = version or client.get(rediskeys.ACTIVE)
    assert version is not None
    value = client.get(rediskeys.user(version, user))
    return None if value is None else value


def wait_for(condition: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s")


@pytest.fixture(scope="module")
def world(broker: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from kafka.admin import KafkaAdminClient, NewTopic

    bootstrap = f"{LOOPBACK}:{broker.port}"
    topic = f"movielog-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    root = tmp_path_factory.mktemp("refresher-world")
    world = World(root, bootstrap, topic)
    world.produce(list(simulate_lines(users=150, movies=80, days=8, seed=11, noise=0, start=START)))
    snapshot = SnapshotStore(root).cut(Journal(root, topic)).snapshot_id
    settings = TrainingSettings(data_dir=root)
    for algorithm in ("ease", "popularity"):
        world.models[algorithm] = train(algorithm, snapshot, settings).version
    world.catalogue = world.model("ease").item_ids.tolist()
    yield world


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()
