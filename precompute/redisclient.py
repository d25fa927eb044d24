"""The one way precompute opens Redis: ``with connect(settings) as client:``, and the few
operations that differ between one node and Redis Cluster.

The URL is ``Settings.redis_url`` (REDIS_URL) and the topology ``Settings.redis_topology``
(REDIS_MODE), opened by ``redisconn.clients`` like every role's: ``single`` gives a
``redis.Redis``; ``sentinel`` a ``redis.Redis`` whose connections ask Sentinel for the
current primary whenever they reconnect (so a publish after a failover writes to the new
one); ``cluster`` a ``RedisCluster`` (slots, redirections and failovers followed by
redis-py). The client is closed when the block ends, however it ends. Replies are bytes
unless ``decode_responses`` (every function of ``precompute.publish`` and
``precompute.versions`` accepts either).

The key layout (``contracts.rediskeys``) keeps every multi-key command of the protocol within
one slot, except what is here: reading many users' lists (``mget``), scanning a version's
keys on every primary (``scan``), memory and eviction counters summed over the primaries
(``info_total``), the writer's per-node connections (``node_for``), and waiting until every
primary's replicas hold what was written (``wait_for_replicas``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import redis
from redis.cluster import RedisCluster

from precompute.settings import Settings
from redisconn.clients import Client, open_client

REPLICA_WAIT_MS = 10_000  # how long a publish waits for the replicas to acknowledge


class ReplicationError(redis.RedisError):
    """A primary's replicas did not acknowledge what was written in time."""


@contextmanager
def connect(settings: Settings, *, decode_responses: bool = False) -> Iterator[Client]:
    client = open_client(
        settings.redis_url, settings.redis_topology, decode_responses=decode_responses
    )
    try:
        yield client
    finally:
        client.close()


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def primaries(client: Client) -> list[redis.Redis]:
    """A plain client per primary: the node itself, or each primary of the cluster."""
    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def node_for(client: Client, key: str) -> tuple[str, redis.Redis]:
    """(a name, a plain client) of the primary that holds ``key``."""
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)
        return node.name, client.get_redis_connection(node)
    return "", client


def info_total(client: Client, section: str, field: str) -> int:
    """``field`` of ``INFO section``, summed over the primaries (0 where a node lacks it)."""
    return sum(int(node.info(section).get(field, 0)) for node in primaries(client))


def mget(client: Client, keys: Sequence[str]) -> list[Any]:
    """Values of ``keys`` in order, whatever slots they are in (on a cluster, one ``MGET``
    per slot, pipelined per node: not atomic, which reading a finished version needs not)."""
    if isinstance(client, RedisCluster):
        return cast("list[Any]", client.mget_nonatomic(list(keys)))
    return cast("list[Any]", client.mget(list(keys)))


def scan(client: Client, pattern: str, count: int = 10_000) -> Iterator[Any]:
    """Keys matching ``pattern`` on every primary (a cluster's ``scan_iter`` visits each)."""
    return client.scan_iter(match=pattern, count=count)


def wait_for_replicas(client: Client, timeout_ms: int | None = None) -> int:
    """Block until every replica connected to each primary has acknowledged every write
    made so far (``WAIT``), so that a failover right after cannot lose them; raises
    ``ReplicationError`` if one has not within ``timeout_ms``. Returns the replicas that
    acknowledged (0 on a node without replicas: nothing to wait for)."""
    timeout_ms = REPLICA_WAIT_MS if timeout_ms is None else timeout_ms
    acknowledged = 0
    for node in primaries(client):
        replicas = int(node.info("replication").get("connected_slaves", 0))
        if replicas:
            got = int(node.wait(replicas, timeout_ms))
            if got < replicas:
                raise ReplicationError(
                    f"only {got} of {replicas} replicas acknowledged within {timeout_ms} ms"
                )
            acknowledged += got
    return acknowledged
