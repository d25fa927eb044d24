"""How the service opens Redis: the one place its clients are made, for each REDIS_MODE.

Each gunicorn thread gets a client of its own (``service.lookup`` explains why; a cluster
client is shared by a worker's threads), with short timeouts and one retry on a connection
error, never on a timeout:

- ``single``: ``redis.Redis`` on REDIS_URL holding one connection;
- ``sentinel``: the same, but its connection asks the sentinels (REDIS_SENTINELS) for the
  primary named REDIS_SENTINEL_MASTER each time it (re)connects, so after a failover the
  first failed request reconnects to the promoted replica;
- ``cluster``: ``redis.cluster.RedisCluster`` started from REDIS_URL's node and
  REDIS_CLUSTER_NODES; it routes each command to its slot's primary and, on a connection
  error or MOVED, re-reads the slot map, so a promoted replica takes over its slots.

REDIS_URL's password, database and scheme apply in every mode (a cluster has database 0 only).
"""

from __future__ import annotations

import contextlib
from typing import Any, TypeAlias

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import SSLConnection
from redis.exceptions import ClusterDownError, MovedError, RedisError, TimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from contracts.locations import RedisTopology

HEALTH_CHECK_SECONDS = 30  # PING a pooled connection idle longer than this before using it

Client: TypeAlias = redis.Redis | RedisCluster
_TOPOLOGY_ERRORS = (RedisConnectionError, TimeoutError, ClusterDownError, MovedError)


class FollowingSentinelConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that asks the sentinels whenever it (re)connects.

    redis-py 8 reconnects a dropped connection on the send path with
    ``connect_check_health()``, past ``SentinelManagedConnection.connect()``: to the address
    it had, the dead primary's, forever (a client holding its connection, as each of our
    threads does, never recovered from a failover; tests/service/test_failover.py). Here
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


def open_client(url: str, topology: RedisTopology, timeout: float) -> Client:
    """A client for one thread; does not connect before its first command, except in
    ``single_connection_client`` mode, where a refused connect raises ``RedisError``."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_SECONDS,
    }
    if topology.mode == "cluster":
        nodes = [ClusterNode(host, port) for host, port in topology.cluster_startup_nodes()]
        return RedisCluster.from_url(
            url,
            startup_nodes=nodes,
            retry=Retry(NoBackoff(), retries=1),
            max_connections=64,  # per node, shared by the worker's threads (service.lookup)
            **options,
        )
    retry = Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))
    if topology.mode == "sentinel":
        credentials = topology.credentials(url)
        tls = credentials.pop("ssl", False)
        sentinel = Sentinel(
            topology.sentinel_addresses(),
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            connection_class=FollowingSentinelSSLConnection if tls else FollowingSentinelConnection,
            **credentials,
            **options,
        )
        pool = SentinelConnectionPool(
            topology.sentinel_master,
            sentinel,
            is_master=True,
            max_connections=2,
            retry=retry,
            **sentinel.connection_kwargs,
        )
        return redis.Redis(connection_pool=pool, single_connection_client=True)
    return redis.Redis.from_url(
        url,
        single_connection_client=True,
        max_connections=2,  # that one, and one for the pipelined refresh
        retry=retry,
        **options,
    )


def after_error(client: Client, error: RedisError) -> None:
    """Called when a transaction failed: a cluster client re-reads the slot map. Its single
    commands do that by themselves on a connection error, but its transaction pipelines
    only every ``reinitialize_steps`` errors of one pipeline, and each refresh of the
    routing table is a new pipeline: without this, a failed-over master of the control
    keys' slot would be asked forever."""
    if isinstance(client, RedisCluster) and isinstance(error, _TOPOLOGY_ERRORS):
        with contextlib.suppress(RedisError):  # no node answers yet: the next failure retries
            client.nodes_manager.initialize()


def close(client: Client) -> None:
    """Close ``client`` and every connection it opened."""
    client.close()
    if isinstance(client, redis.Redis):
        client.connection_pool.disconnect()
