"""The circuit breaker (``service.breaker``) in the store: a hung Redis stops costing
timeouts."""

from __future__ import annotations

import time
from collections.abc import Callable

from service.lookup import RecommendationStore
from service.settings import Settings

KNOWN_USER = 220358


def test_breaker_stops_paying_timeouts_to_a_hung_redis(
    hung_redis: str, counter: Callable[..., float], shipped_body: bytes
) -> None:
    """After REDIS_BREAKER_FAILURES timeouts in a row, requests skip Redis for a while."""
    store = RecommendationStore.from_settings(
        Settings(
            redis_url=hung_redis,
            redis_timeout_ms=100,
            redis_breaker_failures=2,
            redis_breaker_seconds=30,
        )
    )
    skipped_before = counter("recsys_service_fallbacks_total", cause="redis_skipped")
    try:
        for _ in range(2):
            assert store.recommend(KNOWN_USER).source == "fallback"  # ~100 ms each
        started = time.monotonic()
        answers = [store.recommend(KNOWN_USER) for _ in range(50)]
        elapsed = time.monotonic() - started
    finally:
        store.close()
    assert {a.body for a in answers} == {shipped_body}
    assert elapsed < 0.5  # 50 timeouts would be 5 s
    skipped = counter("recsys_service_fallbacks_total", cause="redis_skipped") - skipped_before
    assert skipped == 50
