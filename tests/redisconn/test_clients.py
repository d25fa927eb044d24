"""``redisconn.clients`` against real replicated Redis: a client held across a Sentinel
failover follows it by itself, whether it takes a pooled connection per command (precompute's
``connect``, the refresher's, the experiments' decoded one) or holds one connection (the
service's per-thread clients, tests/service/test_failover.py under load); and every mode
opens a working client with the URL's database and the role's options."""

from __future__ import annotations

import signal
import time

import pytest
from redis.exceptions import RedisError

from contracts.locations import RedisTopology
from devstack.servers import SentinelServers
from redisconn.clients import Client, open_client

FAILOVER_SECONDS = 30.0  # sentinels notice (down-after) and promote; then the client retries


def _write_until_it_works(client: Client, key: str, value: str, deadline: float) -> int:
    """SET until a command succeeds; the failures it took (each a reconnect attempt)."""
    failures = 0
    while True:
        try:
            client.set(key, value)
            return failures
        except RedisError:
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_held_client_follows_a_sentinel_failover_by_itself(
    sentinel_servers: SentinelServers,
) -> None:
    env = sentinel_servers.env()
    topology = RedisTopology.from_env(env)
    clients = {
        "bytes": open_client(env["REDIS_URL"], topology),
        "decoded": open_client(env["REDIS_URL"], topology, decode_responses=True),
        # the service's shape: one connection held for the client's life, reconnected on
        # the send path (redis-py's own Sentinel connection goes back to the dead primary)
        "held": open_client(env["REDIS_URL"], topology, single_connection_client=True),
    }
    try:
        for name, client in clients.items():
            client.set(f"before:{name}", "1")
        old = sentinel_servers.primary_port()
        assert {int(c.info("server")["tcp_port"]) for c in clients.values()} == {old}
        sentinel_servers.server(old).stop(signal.SIGKILL)

        deadline = time.monotonic() + FAILOVER_SECONDS
        for name, client in clients.items():
            _write_until_it_works(client, f"after:{name}", "2", deadline)
        new = sentinel_servers.primary_port()
        assert new != old
        for name, client in clients.items():
            # the same client object, now on the promoted replica, which kept the old writes
            assert int(client.info("server")["tcp_port"]) == new, name
            assert client.get(f"before:{name}") in (b"1", "1"), name
            assert client.get(f"after:{name}") in (b"2", "2"), name
    finally:
        for client in clients.values():
            client.close()


@pytest.mark.parametrize("mode", ["single", "cluster", "sentinel"])
def test_every_mode_opens_a_client_with_the_urls_database_and_options(
    mode: str, redis_url: str, request: pytest.FixtureRequest
) -> None:
    if mode == "single":
        env = {"REDIS_URL": redis_url[: -len("0")] + "3"}
    elif mode == "cluster":
        env = request.getfixturevalue("redis_cluster").env()
    else:
        env = request.getfixturevalue("sentinel_servers").env()
        env["REDIS_URL"] = env["REDIS_URL"][: -len("0")] + "2"
    client = open_client(
        env["REDIS_URL"], RedisTopology.from_env(env), decode_responses=True, socket_timeout=2.0
    )
    try:
        client.set("redisconn:k", "v")
        assert client.get("redisconn:k") == "v"  # decoded: the option reached the connections
        if mode != "cluster":  # a cluster has database 0 only
            kwargs = client.connection_pool.connection_kwargs
            assert (kwargs["db"], kwargs["socket_timeout"]) == (int(env["REDIS_URL"][-1]), 2.0)
        client.delete("redisconn:k")
    finally:
        client.close()
