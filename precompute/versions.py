"""The published versions in Redis: which one is served, which are kept, which are pending;
rollback, pruning and the cleanup of what crashed publishes left.

A version is *pending* (listed in ``rediskeys.PENDING``) from the moment ``publish.begin``
opens it until ``publish.finalize`` switches to it, and again once it is unpublished (pruned
or rolled back) until its keys are deleted; *published* versions are in ``rediskeys.VERSIONS``
(by publish time), the *active* one is named by ``rediskeys.ACTIVE``, and a version is
*served* when it is active or an A/B variant is pinned to it (``rediskeys.VARIANT_VERSIONS``).
A served version's keys are never deleted, so a reader always gets one whole version.

Every function takes an open client (``precompute.redisclient.connect``); the writing of a
version is ``precompute.publish``.
"""

from __future__ import annotations

import time
from typing import cast

import redis

from contracts import rediskeys
from precompute import redisclient
from precompute.redisclient import Client


class PublishError(RuntimeError):
    """A version that must not be switched to (or a rollback that cannot happen)."""


def as_text(value: bytes | str) -> str:
    """Clients may or may not decode responses; accept both."""
    return value.decode() if isinstance(value, bytes) else value


def active(client: Client) -> str | None:
    value = client.get(rediskeys.ACTIVE)
    return None if value is None else as_text(value)


def published(client: Client) -> list[str]:
    """Published versions, oldest first."""
    members = cast("list[bytes | str]", client.zrange(rediskeys.VERSIONS, 0, -1))  # no scores
    return [as_text(v) for v in members]


def pending(client: Client) -> list[str]:
    return sorted(as_text(v) for v in client.smembers(rediskeys.PENDING))


def served(client: Client) -> set[str]:
    """Versions someone reads: the active one and any an A/B variant is pinned to."""
    pinned = {as_text(v) for v in client.hvals(rediskeys.VARIANT_VERSIONS)}
    current = active(client)
    return pinned | ({current} if current else set())


def meta(client: Client, version: str) -> dict[str, str]:
    """A version's metadata (model, snapshot, state, times, users...); {} if it has none."""
    raw = client.hgetall(rediskeys.meta(version))
    return {as_text(k): as_text(v) for k, v in raw.items()}


def status(client: Client) -> dict:
    """What is served and kept, with each version's metadata (model, snapshot, times,
    users, Redis bytes per user)."""
    current, kept, waiting = active(client), published(client), pending(client)
    return {
        "active": current,
        "versions": kept,
        "pending": waiting,
        "meta": meta(client, current) if current else {},
        "kept": {v: meta(client, v) for v in kept},
    }


def require_pending(client: Client, version: str) -> None:
    if not client.sismember(rediskeys.PENDING, version):
        raise PublishError(f"version {version} is not pending (finalized, or cleaned up)")


def rollback(client: Client, grace_seconds: float = 2.0, to: str | None = None) -> str:
    """Switch back to ``to``, a version published before the active one (default: the one
    right before it); unpublish every version after it and delete them.

    The switch is one atomic transaction (guarded by WATCH against a concurrent publish),
    after which the active version is again the newest published one; the deletion waits
    ``grace_seconds`` so that services still holding the old pointer in their cache keep
    reading whole answers meanwhile (the versions left are pending meanwhile, so a crash
    during the grace still gets them deleted).
    """
    state: dict[str, list[str]] = {}

    def switch_back(pipe: redis.client.Pipeline) -> None:
        current = active(pipe)
        history = published(pipe)
        if current not in history or history.index(current) == 0:
            raise PublishError("no previous version to roll back to")
        earlier = history[: history.index(current)]
        target = to or earlier[-1]
        if target not in earlier:
            raise PublishError(
                f"{target} is not a version published before {current}; kept: {earlier}"
            )
        left = history[history.index(target) + 1 :]
        state.update(target=[target], left=left)
        pipe.multi()
        pipe.set(rediskeys.ACTIVE, target)
        pipe.zrem(rediskeys.VERSIONS, *left)
        pipe.sadd(rediskeys.PENDING, *left)

    client.transaction(switch_back, rediskeys.ACTIVE, rediskeys.VERSIONS)
    time.sleep(grace_seconds)
    _delete_unserved(client, state["left"])
    return state["target"][0]


def prune(client: Client, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` published versions, never one that is served.

    Unpublishing is one transaction watching what is served and what is published, so an
    experiment pinning one of them at the same moment (``experiments.store.start`` checks,
    in its own transaction, that its versions are published) either pins it first and it
    is kept, or is refused; never pinned to a version being deleted."""
    old: list[str] = []

    def unpublish(pipe: redis.client.Pipeline) -> None:
        keeping = served(pipe)
        old[:] = [v for v in published(pipe)[:-keep] if v not in keeping]
        pipe.multi()
        if old:
            pipe.zrem(rediskeys.VERSIONS, *old)
            pipe.sadd(rediskeys.PENDING, *old)  # a crash before the deletion leaves them to cleanup

    client.transaction(unpublish, rediskeys.ACTIVE, rediskeys.VARIANT_VERSIONS, rediskeys.VERSIONS)
    _delete_unserved(client, old)
    return old


def cleanup_crashed(client: Client) -> list[str]:
    """Delete the keys of versions left pending (crashed publishes, interrupted rollbacks
    and prunes), and of rolled-back versions an experiment kept until it no longer does."""
    left, kept = pending(client), set(published(client))
    for version in kept.intersection(left):
        client.srem(rediskeys.PENDING, version)  # published after all: only the marker is stale
    _delete_unserved(client, [v for v in left if v not in kept])
    return left


def _delete_unserved(client: Client, unpublished: list[str]) -> None:
    """Delete unpublished versions nobody reads; one an A/B variant still reads stays
    pending, so the first ``cleanup_crashed`` after its experiment ends deletes it."""
    keeping = served(client)
    for version in unpublished:
        if version not in keeping:
            delete(client, version)
            client.srem(rediskeys.PENDING, version)


def delete(client: Client, version: str) -> None:
    """Every key of ``version`` (not its pending marker): its lists on every primary (on a
    cluster ``UNLINK`` is split by slot), then its metadata and shard reports."""
    batch: list = []
    for key in redisclient.scan(client, rediskeys.version_pattern(version)):
        batch.append(key)
        if len(batch) >= 10_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
    client.unlink(*rediskeys.control_keys(version))
