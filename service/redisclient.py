"""The service's Redis clients (opened by ``redisconn.clients`` for each REDIS_MODE): one per
gunicorn thread (``service.lookup`` explains why; a cluster client is shared by a worker's
threads), with short timeouts and one retry on a connection error, never on a timeout.
"""

from __future__ import annotations

import contextlib

from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, MovedError, RedisError, TimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from contracts.locations import RedisTopology
from redisconn.clients import Client, open_client

__all__ = ["Client", "after_error", "open_thread_client"]

HEALTH_CHECK_SECONDS = 30  # PING a pooled connection idle longer than this before using it

_TOPOLOGY_ERRORS = (RedisConnectionError, TimeoutError, ClusterDownError, MovedError)


def open_thread_client(url: str, topology: RedisTopology, timeout: float) -> Client:
    """A client for one thread: one connection (and one more for the pipelined refresh of
    the routing keys); a cluster client holds up to 64 per node, shared by the threads."""
    cluster = topology.mode == "cluster"
    return open_client(
        url,
        topology,
        retry=Retry(NoBackoff(), retries=1)
        if cluster
        else Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        max_connections=64 if cluster else 2,
        single_connection_client=not cluster,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_SECONDS,
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
