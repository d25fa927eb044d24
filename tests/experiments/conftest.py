"""Fixtures of the experiments' tests: planted outcomes (``outcomes_frame``) and a Redis
with published versions (``published``), also as the CLI sees it (``cli_redis``).

T0 = 2025-03-01 00:00 UTC is when ``outcomes_frame``'s exposures start by default; the test
modules that name it write it out themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import redis

from contracts import rediskeys

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _outcomes_frame(
    rates: dict[str, float], users: int, *, seed: int = 0, days: int = 7, start: datetime = T0
) -> pd.DataFrame:
    """``users`` per variant, each converting with the variant's rate, first exposed at a
    random time over ``days``: the shape ``online.conversion`` produces."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, (variant, rate) in enumerate(sorted(rates.items())):
        converted = rng.random(users) < rate
        seconds = rng.integers(0, days * 86_400, users)
        frames.append(
            pd.DataFrame(
                {
                    "user": np.arange(users, dtype=np.int64) + i * users + 1,
                    "variant": variant,
                    "version": f"v-{variant}",
                    "first_exposure": pd.Timestamp(start).tz_localize(None)
                    + pd.to_timedelta(seconds, unit="s"),
                    "exposures": rng.integers(1, 20, users),
                    "conversions": converted.astype(np.int64),
                    "converted": converted,
                    "minutes": np.where(converted, 90.0, 0.0),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def outcomes_frame() -> Callable[..., pd.DataFrame]:
    """``outcomes_frame(rates, users, *, seed=0, days=7, start=T0)``: ``users`` per variant,
    each converting with its variant's rate (``rates``: variant -> rate), first exposed at a
    random time over ``days`` from ``start``; one row per user, as ``online.conversion``
    produces them."""
    return _outcomes_frame


@pytest.fixture
def published(redis_client: redis.Redis) -> redis.Redis:
    """Versions v1..v3 listed as published (the store checks rec:versions only)."""
    redis_client.zadd(rediskeys.VERSIONS, {"v1": 1.0, "v2": 2.0, "v3": 3.0})
    redis_client.set(rediskeys.ACTIVE, "v1")
    return redis_client


@pytest.fixture
def cli_redis(published: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI pointed at the test's Redis, with the versions of ``published``."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    return redis_url
