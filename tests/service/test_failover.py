"""Failover under load, on real replicated Redis: the service (``python -m service``, a real
gunicorn) answers a steady stream of requests while a Redis primary is killed with SIGKILL.

* Redis Cluster (3 masters, 3 replicas, ``REDIS_MODE=cluster``): the master that holds the
  control keys (``rec:{ctl}:...``, read by every routing refresh) is killed: the worst case;
* Sentinel (a primary, a replica, 3 sentinels, ``REDIS_MODE=sentinel``): the primary.

Each asserts: no answer other than 200 with a valid list (the fallback covers the gap); every
answer personalised again within ``RECOVERY_TARGET_SECONDS`` of the kill; nothing published is
lost (every user then gets their own list of the active version, now from the promoted
replica). Each prints one ``FAILOVER {...}`` line with its figures (docs/BENCHMARKS.md quotes
them: ``pytest tests/service/test_failover.py -s``)."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests
from redis.cluster import RedisCluster

from contracts import rediskeys
from contracts.locations import RedisTopology
from devstack.servers import RedisClusterServers, SentinelServers
from precompute import redisclient, versions
from precompute.settings import Settings
from tests.service.test_gunicorn import Reply, hammer

USERS = 120
RECOVERY_TARGET_SECONDS = 10.0
STEADY_SECONDS = 2.0  # all-personal answers for this long after the failover: recovered
GIVE_UP_SECONDS = 30.0

SERVICE_ENV = {
    "WEB_CONCURRENCY": "2",
    "GUNICORN_THREADS": "4",
    "VERSION_REFRESH_SECONDS": "0.2",
    "REDIS_BREAKER_SECONDS": "0.2",
    "REQUEST_LOG": "off",
}


def under_load(service: Any, env: dict[str, str], kill: Callable[[], None]) -> dict[str, Any]:
    """The service on ``env``, four keep-alive clients asking for known users throughout;
    ``kill`` one second in; load until every answer was personal for STEADY_SECONDS (or
    GIVE_UP_SECONDS). Returns the replies and the kill's time."""
    served = service.gunicorn({**SERVICE_ENV, **env}, service.log_dir / "logs")
    stop = threading.Event()
    replies: list[Reply] = []
    users = list(range(1, USERS + 1))
    clients = [
        threading.Thread(target=hammer, args=(served.base, users, stop, replies)) for _ in range(4)
    ]
    try:
        for client in clients:
            client.start()
        time.sleep(1.0)
        killed_at = time.monotonic()
        kill()
        while time.monotonic() < killed_at + GIVE_UP_SECONDS:
            time.sleep(0.25)
            now = time.monotonic()
            recent = [r for r in list(replies) if r.at > now - STEADY_SECONDS]
            since = now - killed_at
            steady = recent and all(r.source == "personal" for r in recent)
            hit = any(r.source != "personal" for r in replies if r.at > killed_at)
            if since > STEADY_SECONDS and steady and hit:
                break
        stop.set()
        for client in clients:
            client.join(timeout=10)
        after = {user: requests.get(f"{served.base}/recommend/{user}", timeout=5) for user in users}
        log = served.stderr.read_text()
    finally:
        stop.set()
        served.stop()
    return {"replies": replies, "killed_at": killed_at, "after": after, "log": log}


def check_and_report(
    mode: str, run: dict[str, Any], service: Any, expected: Callable[[int], str], version: str
) -> None:
    replies: list[Reply] = run["replies"]
    killed_at: float = run["killed_at"]
    statuses = Counter(r.status for r in replies)
    during = [r for r in replies if r.at > killed_at and r.source != "personal"]
    recovered = max((r.at for r in during), default=killed_at) - killed_at
    lost = [
        user
        for user, answer in run["after"].items()
        if answer.status_code != 200
        or answer.text != expected(user)
        or answer.headers.get("X-Model-Version") != version
    ]
    figures = {
        "mode": mode,
        "requests": len(replies),
        "non_2xx": sum(n for status, n in statuses.items() if not 200 <= status < 300),
        "not_personal_after_kill": len(during),
        "seconds_to_all_personal": round(recovered, 2),
        "lost_lists": len(lost),
        "users_checked_after": len(run["after"]),
    }
    print(f"FAILOVER {json.dumps(figures)}")
    assert len(replies) > 200, "the load run barely ran"
    failed = Counter(
        (r.status, r.source, round(r.at - killed_at, 1)) for r in replies if r.status != 200
    )
    assert statuses == Counter({200: len(replies)}), failed
    for reply in replies:  # a published list (short test lists), or the shipped one
        if reply.version == "fallback-file":
            service.assert_contract_body(reply.body)
        else:
            assert reply.version == version and reply.body.startswith(b"fo+"), reply
    assert during, "the kill cost nothing: it did not hit the Redis being read"
    assert {r.source for r in during} <= {"fallback"}
    assert recovered <= RECOVERY_TARGET_SECONDS, figures
    assert lost == [], [(u, run["after"][u].headers, run["after"][u].text) for u in lost[:3]]
    assert "Traceback" not in run["log"]


def test_killing_a_cluster_master_under_load_costs_no_answer_and_no_list(
    service: Any, redis_cluster: RedisClusterServers, cluster_client: RedisCluster, publisher
) -> None:
    published = publisher.publish_lists(cluster_client, "fo", users=USERS)
    _, holder = redisclient.node_for(cluster_client, rediskeys.ACTIVE)
    victim = int(holder.connection_pool.connection_kwargs["port"])
    assert victim in redis_cluster.master_ports()
    try:
        run = under_load(service, redis_cluster.env(), lambda: redis_cluster.kill(victim))
        assert victim not in redis_cluster.master_ports()  # a replica took over its slots
        check_and_report(
            "cluster", run, service, lambda u: publisher.body("fo", u), published.version
        )
    finally:
        redis_cluster.restart(victim)  # back as a replica: the session's cluster stays whole
    assert victim not in redis_cluster.master_ports()


def test_killing_the_sentinel_managed_primary_under_load_costs_no_answer_and_no_list(
    service: Any, sentinel_servers: SentinelServers, publisher
) -> None:
    env = sentinel_servers.env()
    settings = Settings(
        data_dir=sentinel_servers.workdir,
        redis_url=env["REDIS_URL"],
        redis_topology=RedisTopology.from_env(env),
    )
    with redisclient.connect(settings, decode_responses=True) as client:
        published = publisher.publish_lists(client, "fo", users=USERS)
    primary = sentinel_servers.primary_port()
    run = under_load(service, env, lambda: sentinel_servers.server(primary).stop(signal.SIGKILL))
    assert sentinel_servers.primary_port() != primary  # the sentinels promoted the replica
    check_and_report("sentinel", run, service, lambda u: publisher.body("fo", u), published.version)
    with redisclient.connect(settings, decode_responses=True) as client:
        assert versions.active(client) == published.version
