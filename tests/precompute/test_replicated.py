"""Publishing to replicated Redis, real servers on loopback: a Redis Cluster (3 masters, 3
replicas) and a primary + replica under Sentinel. A version's lists are spread over every
master, every replica holds them before the switch, and a replica that does not acknowledge
stops the publish with the old version still served."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
import redis
from redis.cluster import RedisCluster

from contracts import rediskeys
from contracts.locations import RedisTopology
from devstack.servers import LOOPBACK, RedisClusterServers, SentinelServers
from precompute import redisclient, versions
from precompute.publish import PublishError
from precompute.settings import Settings


def node_client(port: int) -> redis.Redis:
    return redis.Redis(host=LOOPBACK, port=port, decode_responses=True)


def test_a_version_is_spread_over_every_master_and_on_every_replica_before_the_switch(
    cluster_client: RedisCluster, redis_cluster: RedisClusterServers, publisher
) -> None:
    users = 5000
    done = publisher.publish_lists(cluster_client, "spread", users=users)
    assert versions.active(cluster_client) == done.version
    per_master: Counter[int] = Counter()
    for port in redis_cluster.master_ports():
        with node_client(port) as node:
            keys = list(node.scan_iter(match=rediskeys.user_pattern(done.version), count=1000))
            per_master[port] = len(keys)
    assert sum(per_master.values()) == users
    # Sharded: each of the 3 masters holds a fair share, none (nearly) all of them.
    assert all(users / 6 < count < users / 2 for count in per_master.values()), per_master
    # finalize WAITed for the replicas: each already holds exactly what its master holds.
    for port, role in redis_cluster.roles().items():
        if role == "slave":
            with node_client(port) as replica:
                info = replica.info("replication")
                with node_client(int(info["master_port"])) as master:
                    assert replica.dbsize() == master.dbsize() > 0
    # The hot path's two keys share a slot: one MGET, one node, no CROSSSLOT.
    body, default = cluster_client.mget(
        rediskeys.user(done.version, 4321), rediskeys.default(done.version, 4321)
    )
    assert body == publisher.body("spread", 4321)
    assert default == publisher.body("spread", "default")
    # Two users of different buckets: the server refuses the pair (what the old layout's
    # MGET of a user key and one default key would have met on every request).
    one, other = rediskeys.user(done.version, 1), rediskeys.user(done.version, 64)
    _, holder = redisclient.node_for(cluster_client, one)
    with pytest.raises(redis.ResponseError, match="same slot"):  # CROSSSLOT
        holder.mget(one, other)


def sentinel_settings(servers: SentinelServers) -> Settings:
    env = servers.env()
    topology = RedisTopology.from_env(env)
    return Settings(data_dir=servers.workdir, redis_url=env["REDIS_URL"], redis_topology=topology)


def test_publish_through_sentinel_and_a_silent_replica_stops_the_switch(
    sentinel_servers: SentinelServers, publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sentinel_settings(sentinel_servers)
    with redisclient.connect(settings, decode_responses=True) as client:
        live = publisher.publish_lists(client, "live")
        assert versions.active(client) == live.version
        replica = sentinel_servers.data[1]
        with node_client(replica.port) as direct:
            assert direct.get(rediskeys.ACTIVE) == live.version
            assert direct.get(rediskeys.user(live.version, 7)) == publisher.body("live", 7)

        monkeypatch.setattr(redisclient, "REPLICA_WAIT_MS", 300)
        assert replica.process is not None
        replica.process.send_signal(signal.SIGSTOP)  # alive, connected, acknowledging nothing
        try:
            with pytest.raises(PublishError, match="replicas acknowledged"):
                publisher.publish_lists(client, "unsafe")
            assert versions.active(client) == live.version
        finally:
            replica.process.send_signal(signal.SIGCONT)
        sentinel_servers.wait_healthy()
        after = publisher.publish_lists(client, "after")  # the crashed one is cleaned up
        assert versions.active(client) == after.version
        assert versions.pending(client) == []
