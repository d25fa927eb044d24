"""The one way precompute opens Redis: ``with connect(settings) as client:``.

The URL is ``Settings.redis_url`` (REDIS_URL); the client is closed when the block ends,
however it ends. Replies are bytes unless ``decode_responses`` (every function of
``precompute.publish`` and ``precompute.versions`` accepts either).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from precompute.settings import Settings


@contextmanager
def connect(settings: Settings, *, decode_responses: bool = False) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=decode_responses)
    try:
        yield client
    finally:
        client.close()
