"""A Redis client for REDIS_URL laid out as ``contracts.locations.RedisTopology`` says; each
role picks only its options (timeouts, retries, pool size, decoded replies):

- ``single``: ``redis.Redis`` on REDIS_URL;
- ``sentinel``: a ``redis.Redis`` whose connections ask the sentinels (REDIS_SENTINELS) for
  the primary named REDIS_SENTINEL_MASTER each time they (re)connect, so after a failover
  the first failed command reconnects to the promoted replica;
- ``cluster``: ``redis.cluster.RedisCluster`` started from REDIS_URL's node and
  REDIS_CLUSTER_NODES; it routes each command to its slot's primary and, on a connection
  error or MOVED, re-reads the slot map, so a promoted replica takes over its slots.

REDIS_URL's password, database and scheme apply in every mode (a cluster has database 0 only).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import SSLConnection
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from contracts.locations import RedisTopology

Client: TypeAlias = redis.Redis | RedisCluster
_SENTINEL_OPTIONS = ("socket_timeout", "socket_connect_timeout")  # also used to ask sentinels


class FollowingSentinelConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that asks the sentinels whenever it (re)connects.

    redis-py 8 reconnects a dropped connection on the send path with
    ``connect_check_health()``, past ``SentinelManagedConnection.connect()``: to the address
    it had, the dead primary's, forever (a client holding its connection, as each service
    thread does, never recovered from a failover; tests/service/test_failover.py). Here
    that path asks the sentinels for the primary first."""

    _resolving = False

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock is None and not self._resolving:
            self._resolving = True  # connect_to() calls back here with the new address
            try:
                self.connect_to(self.connection_pool.get_master_address())
            finally:
                self._resolving = False
            return
        super().connect_check_health(check_health, retry_socket_connect)


class FollowingSentinelSSLConnection(FollowingSentinelConnection, SSLConnection):
    pass


def open_client(
    url: str,
    topology: RedisTopology,
    *,
    retry: Retry | None = None,
    max_connections: int | None = None,
    single_connection_client: bool = False,
    **options: Any,
) -> Client:
    """A client that connects on its first command (except a ``single_connection_client``,
    which connects at once and raises ``RedisError`` when refused). ``options`` go to every
    connection (timeouts, keepalive, ``decode_responses``); ``max_connections`` is per node
    on a cluster; ``single_connection_client`` does not apply there (a cluster client is
    thread-safe, with a pool per node)."""
    pooling: dict[str, Any] = {"retry": retry} if retry is not None else {}
    if max_connections is not None:
        pooling["max_connections"] = max_connections
    if topology.mode == "cluster":
        nodes = [ClusterNode(host, port) for host, port in topology.cluster_startup_nodes()]
        return RedisCluster.from_url(url, startup_nodes=nodes, **pooling, **options)
    if topology.mode == "sentinel":
        credentials = topology.credentials(url)
        tls = credentials.pop("ssl", False)
        sentinel = Sentinel(
            topology.sentinel_addresses(),
            sentinel_kwargs={key: options[key] for key in _SENTINEL_OPTIONS if key in options},
            connection_class=FollowingSentinelSSLConnection if tls else FollowingSentinelConnection,
            **credentials,
            **options,
        )
        pool = SentinelConnectionPool(
            topology.sentinel_master,
            sentinel,
            is_master=True,
            **pooling,
            **sentinel.connection_kwargs,
        )
        client = redis.Redis(
            connection_pool=pool, single_connection_client=single_connection_client
        )
        client.auto_close_connection_pool = True  # close() closes its pool too, as from_url's
        return client
    return redis.Redis.from_url(
        url, single_connection_client=single_connection_client, **pooling, **options
    )
