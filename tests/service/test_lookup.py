"""The lookup store (``service.lookup``) against a real Redis: one round trip per request,
versions switched, rolled back or gone, and Redis dying, pausing, dropping connections or
hanging, each answered from the last default list or the fallback within the request.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis

from contracts import rediskeys, response
from devstack.servers import LOOPBACK, Server
from service.fallback import FILE_VERSION
from service.lookup import Answer, RecommendationStore, load_fallback
from service.settings import Settings

KNOWN_USER = 220358
OTHER_USER = 227244
UNKNOWN_USER = 999_999


class FlakyClient(redis.Redis):
    """A client that fails in a way no RedisError covers, as a library bug would."""

    def mget(self, *args: object, **kwargs: object) -> list[bytes | None]:
        raise ValueError("surprise")


def test_store_never_raises_even_on_unexpected_errors(
    service: Any, fallback_file: tuple[Path, str]
) -> None:
    service.publish("v1", {}, "popular")
    path, body = fallback_file
    store = RecommendationStore(lambda: FlakyClient.from_url(service.url), load_fallback(path))
    before = service.counter("recsys_service_fallbacks_total", cause="bug")
    try:
        answer = store.recommend(KNOWN_USER)
    finally:
        store.close()
    assert answer == Answer(body.encode(), FILE_VERSION, "fallback", "control")
    assert service.counter("recsys_service_fallbacks_total", cause="bug") - before == 1


# --- versions and round trips ------------------------------------------------------------


def test_switched_active_version_is_picked_up_after_the_refresh_interval(service: Any) -> None:
    refresh = 0.5
    v1 = service.publish("v1", {KNOWN_USER: "one"}, "pop1")
    client = service.client(version_refresh_seconds=refresh)
    assert client.get(f"/recommend/{KNOWN_USER}").data == v1[KNOWN_USER].encode()

    v2 = service.publish("v2", {KNOWN_USER: "two"}, "pop2")
    switched_at = time.monotonic()
    cached = client.get(f"/recommend/{KNOWN_USER}")
    if time.monotonic() - switched_at < refresh:  # the cached version is still in use
        assert cached.headers["X-Model-Version"] == "v1"
        assert cached.data == v1[KNOWN_USER].encode()

    time.sleep(refresh + 0.1)
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert resp.headers["X-Model-Version"] == "v2"
    assert resp.data == v2[KNOWN_USER].encode()
    unknown = client.get(f"/recommend/{UNKNOWN_USER}")
    assert unknown.data == response.format_body(service.movies("pop2")).encode()


def test_steady_state_costs_one_mget_per_request(service: Any) -> None:
    service.publish("v1", {KNOWN_USER: "known"}, "popular")
    client = service.client(version_refresh_seconds=60.0)
    client.get(f"/recommend/{KNOWN_USER}")  # reads the routing table once
    service.redis.config_resetstat()

    for i in range(50):
        assert client.get(f"/recommend/{KNOWN_USER if i % 2 else UNKNOWN_USER}").status_code == 200

    stats = service.redis.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 50
    assert "cmdstat_get" not in stats
    ours = {k: v for k, v in stats.items() if k not in {"cmdstat_config", "cmdstat_ping"}}
    calls = sum(v["calls"] for v in ours.values())
    assert calls == 50, stats


def test_active_version_without_its_keys_falls_back_to_the_last_default(service: Any) -> None:
    service.publish("v1", {}, "popular")
    client = service.client(version_refresh_seconds=0.0)
    assert client.get(f"/recommend/{UNKNOWN_USER}").headers["X-Model-Version"] == "v1"

    service.redis.set(rediskeys.ACTIVE, "gone")  # e.g. cleaned up, or a publish half-done
    resp = client.get(f"/recommend/{UNKNOWN_USER}")
    assert resp.status_code == 200
    assert resp.data == response.format_body(service.movies("popular")).encode()
    assert resp.headers["X-Model-Version"] == "v1"
    assert resp.headers["X-Recommendation-Source"] == "fallback"


def test_rollback_deleting_the_cached_version_is_noticed_on_the_next_request(
    service: Any,
) -> None:
    """precompute's rollback switches ACTIVE back and deletes the version it leaves at once;
    the service must not serve non-personal answers for a whole refresh interval."""
    v1 = service.publish("v1", {KNOWN_USER: "one"}, "pop1")
    service.publish("v2", {KNOWN_USER: "two"}, "pop2")
    client = service.client(version_refresh_seconds=60.0)
    assert client.get(f"/recommend/{KNOWN_USER}").headers["X-Model-Version"] == "v2"

    service.redis.set(rediskeys.ACTIVE, "v1")
    service.redis.delete(*service.redis.keys(rediskeys.version_pattern("v2")))  # lists
    gap = client.get(f"/recommend/{KNOWN_USER}")
    assert gap.status_code == 200
    assert gap.headers["X-Recommendation-Source"] == "fallback"
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert resp.headers["X-Model-Version"] == "v1"
    assert resp.headers["X-Recommendation-Source"] == "personal"
    assert resp.data == v1[KNOWN_USER].encode()


# --- failures ---------------------------------------------------------------------------


def test_redis_dying_after_a_default_was_seen_answers_200_from_memory(
    service: Any, private_redis: Server
) -> None:
    server = private_redis
    url = f"redis://{LOOPBACK}:{server.port}/0"
    own = redis.Redis.from_url(url)
    bodies = service.publish("v7", {KNOWN_USER: "known"}, "popular", to=own)
    own.close()
    client = service.client(redis_url=url, version_refresh_seconds=0.05, redis_breaker_seconds=0.05)
    assert client.get(f"/recommend/{KNOWN_USER}").data == bodies[KNOWN_USER].encode()
    errors_before = service.counter("recsys_service_fallbacks_total", cause="redis_error")

    server.stop()
    for userid in (KNOWN_USER, UNKNOWN_USER, KNOWN_USER, UNKNOWN_USER):
        started = time.monotonic()
        resp = client.get(f"/recommend/{userid}")
        assert time.monotonic() - started < 0.25
        assert resp.status_code == 200
        assert resp.data == response.format_body(service.movies("popular")).encode()
        assert resp.headers["X-Model-Version"] == "v7"
        assert resp.headers["X-Recommendation-Source"] == "fallback"
        time.sleep(0.06)  # let the routing cache expire, so the refresh path fails too
    assert service.counter("recsys_service_fallbacks_total", cause="redis_error") > errors_before

    server.start()  # Redis back, empty: publish again and expect personal answers
    own = redis.Redis.from_url(url)
    service.publish("v8", {KNOWN_USER: "again"}, "popular", to=own)
    own.close()
    time.sleep(0.1)  # past the breaker's pause and the refresh interval
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert resp.headers["X-Recommendation-Source"] == "personal"
    assert resp.headers["X-Model-Version"] == "v8"


def test_slow_redis_times_out_fast_to_the_fallback(service: Any, private_redis: Server) -> None:
    """CLIENT PAUSE makes a real Redis stop answering for a while: the slow-Redis case."""
    url = f"redis://{LOOPBACK}:{private_redis.port}/0"
    own = redis.Redis.from_url(url)
    bodies = service.publish("v1", {KNOWN_USER: "known", OTHER_USER: "other"}, "popular", to=own)
    client = service.client(redis_url=url, redis_timeout_ms=30, redis_breaker_seconds=0.1)
    assert client.get(f"/recommend/{KNOWN_USER}").data == bodies[KNOWN_USER].encode()
    timeouts_before = service.counter("recsys_service_redis_errors_total", error="TimeoutError")

    own.execute_command("CLIENT", "PAUSE", "400", "ALL")
    started = time.monotonic()
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert time.monotonic() - started < 0.2  # one 30 ms timeout, not the 400 ms pause
    assert resp.status_code == 200
    assert resp.headers["X-Recommendation-Source"] == "fallback"
    assert service.counter("recsys_service_redis_errors_total", error="TimeoutError") > (
        timeouts_before
    )

    time.sleep(0.6)  # the pause is over, and so is the breaker's
    # Another user: a reply left over from the timed-out request must not be read as this
    # one's (the timed-out connection is dropped, not reused).
    resp = client.get(f"/recommend/{OTHER_USER}")
    assert resp.headers["X-Recommendation-Source"] == "personal"
    assert resp.data == bodies[OTHER_USER].encode()
    own.close()


def test_a_connection_closed_by_redis_is_reopened_within_the_request(service: Any) -> None:
    """After a Redis restart or failover every pooled socket is dead: the next request
    reconnects and retries once, and still gets its own list, not the fallback."""
    bodies = service.publish("v1", {KNOWN_USER: "known"}, "popular")
    client = service.client(version_refresh_seconds=60.0)
    assert client.get(f"/recommend/{KNOWN_USER}").headers["X-Recommendation-Source"] == "personal"
    fallbacks_before = service.counter("recsys_service_fallbacks_total", cause="redis_error")
    errors_before = service.counter("recsys_service_redis_errors_total", error="ConnectionError")

    killed = service.redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert killed >= 1  # the service's connection is gone
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert resp.headers["X-Recommendation-Source"] == "personal"
    assert resp.data == bodies[KNOWN_USER].encode()
    assert service.counter("recsys_service_fallbacks_total", cause="redis_error") == (
        fallbacks_before
    )
    assert service.counter("recsys_service_redis_errors_total", error="ConnectionError") == (
        errors_before
    )


def test_hung_redis_costs_one_timeout_even_under_concurrency(
    hung_redis: str, fallback_file: tuple[Path, str]
) -> None:
    """Concurrent first requests must not queue behind each other's timeouts."""
    path, body = fallback_file
    store = RecommendationStore.from_settings(
        Settings(redis_url=hung_redis, redis_timeout_ms=100, fallback_path=path)
    )

    def timed(userid: int) -> tuple[float, Answer]:
        started = time.monotonic()
        answer = store.recommend(userid)
        return time.monotonic() - started, answer

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(timed, range(1, 9)))
    finally:
        store.close()
    assert all(a.body == body.encode() and a.source == "fallback" for _, a in results)
    assert max(elapsed for elapsed, _ in results) < 0.35  # 8 stacked timeouts would be 0.8 s
