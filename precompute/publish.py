"""Publishing to Redis: a new version under its own keys, verified, then one atomic switch.

The service reads ``rediskeys.ACTIVE`` to know which version to answer from. A publish
writes every key of the new version first (pipelined, nothing the service reads changes),
checks the count and a sample, and only then ``SET``s ``ACTIVE``: readers see the old
version or the new one, never a mix. The previous version stays for rollback; older ones
are deleted. A crashed publish leaves its version in ``PENDING``; the next run removes it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from service import rediskeys

PENDING = "rec:pending"  # versions being written; anything left here after a run crashed


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class Published:
    version: str
    users: int
    removed: list[str]


def new_version() -> str:
    """Short (keys are per user), sortable by time, unique to the millisecond."""
    return datetime.now(UTC).strftime("%y%m%d%H%M%S%f")[:-3]


def publish(
    client: redis.Redis,
    bodies: Iterable[tuple[int, str]],
    *,
    default_body: str,
    meta: dict[str, str],
    batch: int = 5000,
    keep: int = 2,
    sample: int = 50,
) -> Published:
    """Write every body under a new version, verify it, switch to it, prune old versions."""
    cleanup_crashed(client)
    version = new_version()
    client.sadd(PENDING, version)
    written: list[int] = []
    pipe = client.pipeline(transaction=False)
    for user_id, body in bodies:
        pipe.set(rediskeys.user(version, user_id), body)
        written.append(user_id)
        if len(pipe) >= batch:
            pipe.execute()
    pipe.set(rediskeys.default(version), default_body)
    created = datetime.now(UTC).isoformat()
    pipe.hset(
        rediskeys.meta(version),
        mapping={**meta, "version": version, "created_at": created, "users": len(written)},
    )
    pipe.execute()
    _verify(client, version, written, sample)
    switch(client, version)
    client.srem(PENDING, version)
    removed = prune(client, keep)
    return Published(version, len(written), removed)


def _verify(client: redis.Redis, version: str, users: list[int], sample: int) -> None:
    if not client.exists(rediskeys.default(version)):
        raise PublishError(f"version {version}: cold-start list missing")
    picked = random.Random(version).sample(users, min(sample, len(users)))
    values = client.mget([rediskeys.user(version, u) for u in picked]) if picked else []
    missing = [u for u, v in zip(picked, values, strict=True) if not v]
    if missing:
        raise PublishError(f"version {version}: {len(missing)} sampled users missing")
    stored = int(client.hget(rediskeys.meta(version), "users") or -1)
    if stored != len(users):
        raise PublishError(f"version {version}: meta says {stored} users, wrote {len(users)}")


def switch(client: redis.Redis, version: str) -> None:
    """Make ``version`` the one the service answers from: one atomic SET."""
    with client.pipeline(transaction=True) as pipe:
        pipe.set(rediskeys.ACTIVE, version)
        pipe.zadd(rediskeys.VERSIONS, {version: datetime.now(UTC).timestamp()})
        pipe.execute()


def _text(value: bytes | str) -> str:
    """Clients may or may not decode responses; accept both."""
    return value.decode() if isinstance(value, bytes) else value


def active(client: redis.Redis) -> str | None:
    value = client.get(rediskeys.ACTIVE)
    return None if value is None else _text(value)


def versions(client: redis.Redis) -> list[str]:
    """Published versions, oldest first."""
    return [_text(v) for v in client.zrange(rediskeys.VERSIONS, 0, -1)]


def rollback(client: redis.Redis) -> str:
    """Switch back to the version published before the active one; drop the active one."""
    current = active(client)
    history = versions(client)
    if current not in history or history.index(current) == 0:
        raise PublishError("no previous version to roll back to")
    previous = history[history.index(current) - 1]
    switch(client, previous)
    _delete_version(client, current)
    return previous


def prune(client: redis.Redis, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` versions (never the active one)."""
    current = active(client)
    old = [v for v in versions(client)[:-keep] if v != current]
    for version in old:
        _delete_version(client, version)
    return old


def cleanup_crashed(client: redis.Redis) -> list[str]:
    """Remove the keys of publishes that never reached the switch."""
    crashed = [_text(v) for v in client.smembers(PENDING)]
    for version in crashed:
        if version != active(client):
            _delete_version(client, version)
        client.srem(PENDING, version)
    return crashed


def _delete_version(client: redis.Redis, version: str) -> None:
    client.zrem(rediskeys.VERSIONS, version)
    batch = []
    for key in client.scan_iter(match=rediskeys.version_pattern(version), count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
