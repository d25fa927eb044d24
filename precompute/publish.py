"""Publishing to Redis: a new version under its own keys, verified, then one atomic switch.

The service reads ``rediskeys.ACTIVE`` to know which version to answer from, then the
user's key and the default key *of that version*. A version's keys are written while it is
only listed in ``rediskeys.PENDING``, never changed once it is active, and deleted only when
no reader can still be using it, so a reader always gets one whole version: the old or the
new, never a mix, never a missing key.

A publish is three steps, so that K workers can write K shards in parallel (Airflow maps
over the shards) and one finalizer switches:

1. ``begin``: remove what crashed publishes left (``cleanup_crashed``), pick a version,
   write its cold-start list and its metadata (model, snapshot, planned users and shards),
   list it as pending.
2. ``write_shard`` (once per shard, idempotent, so a retried shard is harmless): ``MSET``
   of the shard's bodies in batches, each followed by an ``EXISTS`` of the same keys in the
   same round trip, so the count recorded is what Redis holds, not what was sent; replies
   are read one batch late, so Redis stores a batch while this process builds the next.
   Then a report (users, verified count, a sample of bodies) in ``rediskeys.shards(version)``.
3. ``finalize``: every planned shard reported, verified counts add up to the planned users,
   the sampled bodies read back equal what the shards wrote, the cold-start list is valid,
   and Redis evicted nothing meanwhile. Only then one ``MULTI``: ``SET`` the active pointer,
   record the publish time, mark the metadata published, drop it from pending. Then
   ``prune`` deletes all but the newest ``keep`` versions (never one that is served).

A crash anywhere before the switch leaves the active version untouched; the half-written
version stays pending and the next ``begin`` deletes it. ``rollback`` switches back to the
previous version (or an earlier kept one) and deletes the ones it leaves after a grace period
(listed as pending meanwhile, so a crash during the grace still gets them deleted).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import islice

import redis

from contracts import rediskeys
from contracts.response import LIST_LENGTH, parse_body
from precompute.shard import Shard

PENDING = rediskeys.PENDING


class PublishError(RuntimeError):
    """A version that must not be switched to (or a rollback that cannot happen)."""


@dataclass(frozen=True)
class ShardReport:
    shard: str
    model_version: str
    users: int
    verified: int
    seconds: float
    sample: dict[str, str] = field(default_factory=dict)  # user_id -> body, read back later


@dataclass(frozen=True)
class Published:
    version: str
    users: int
    removed: list[str]
    bytes_per_user: float | None


def new_version() -> str:
    """Short (it is in every key), sortable by time, unique to the millisecond."""
    return datetime.now(UTC).strftime("%y%m%d%H%M%S%f")[:-3]


# --- 1. begin -------------------------------------------------------------------------------


def begin(
    client: redis.Redis,
    *,
    meta: dict[str, str],
    default_body: bytes | str,
    users: int | None,
    shards: int = 1,
) -> str:
    """Open a pending version: cold-start list and metadata written, nothing served yet.

    ``users`` is the number of users the shards must add up to (None: whatever they write).
    """
    cleanup_crashed(client)
    version = new_version()
    memory, stats = client.info("memory"), client.info("stats")
    plan = {
        **meta,
        "version": version,
        "state": "pending",
        "created_at": datetime.now(UTC).isoformat(),
        "shards": shards,
        "used_memory_at_begin": memory["used_memory"],
        "evicted_keys_at_begin": stats.get("evicted_keys", 0),
    }
    if users is not None:
        plan["users"] = users
    with client.pipeline(transaction=True) as pipe:
        pipe.sadd(PENDING, version)
        pipe.set(rediskeys.default(version), default_body)
        pipe.hset(rediskeys.meta(version), mapping=plan)
        pipe.execute()
    return version


# --- 2. one shard ---------------------------------------------------------------------------


def write_shard(
    client: redis.Redis,
    version: str,
    shard: Shard,
    blocks: Iterable[tuple[Sequence[int], Sequence[bytes | str]]],
    *,
    expected: int | None,
    model_version: str,
    batch: int = 1000,
    sample: int = 50,
) -> ShardReport:
    """Write one shard's bodies, given as blocks of (user IDs, bodies), into pending
    ``version``, and record what Redis now holds."""
    started = time.perf_counter()
    _require_pending(client, version)
    picks = _sample_positions(version, shard, expected, sample)
    chosen: dict[str, str] = {}
    written = 0

    def batches() -> Iterator[tuple[list, list]]:
        nonlocal written
        for user_ids, bodies in blocks:
            for lo in range(0, len(user_ids), batch):
                ids, values = user_ids[lo : lo + batch], bodies[lo : lo + batch]
                keys = [rediskeys.user(version, u) for u in ids]
                args: list = [None] * (2 * len(keys))
                args[0::2], args[1::2] = keys, values
                for i in picks.intersection(range(written, written + len(keys))):
                    chosen[str(ids[i - written])] = _text(values[i - written])
                written += len(keys)
                yield args, keys

    verified = _write(client, batches())
    if expected is not None and written != expected:
        raise PublishError(f"shard {shard}: planned {expected} users, got {written}")
    if verified != written:
        raise PublishError(f"shard {shard}: wrote {written} keys, Redis holds {verified}")
    report = ShardReport(
        str(shard),
        model_version,
        written,
        verified,
        round(time.perf_counter() - started, 3),
        chosen,
    )
    if not client.sismember(PENDING, version):
        # Another run's cleanup took the version away meanwhile: our keys belong to no one.
        _delete_version(client, version)
        raise PublishError(f"version {version} stopped being pending during shard {shard}")
    client.hset(rediskeys.shards(version), str(shard.index), json.dumps(asdict(report)))
    return report


def _write(client: redis.Redis, batches: Iterable[tuple[list, list]]) -> int:
    """``MSET`` each batch, then ``EXISTS`` of its keys; returns how many keys exist.

    The replies to a batch are read only after the next batch is built and packed, so
    Redis works on one batch while this process prepares the next (with a plain pipeline
    each side would wait for the other). Hence one connection of our own.
    """
    conn = client.connection_pool.get_connection()
    verified, in_flight = 0, False
    try:
        for args, keys in batches:
            packed = conn.pack_commands([("MSET", *args), ("EXISTS", *keys)])
            if in_flight:
                verified += _replies(conn)
            conn.send_packed_command(packed, check_health=False)
            in_flight = True
        if in_flight:
            verified += _replies(conn)
    except BaseException:
        conn.disconnect()  # replies may be left unread: never hand this socket back as is
        raise
    finally:
        client.connection_pool.release(conn)
    return verified


def _replies(conn: redis.connection.AbstractConnection) -> int:
    try:
        conn.read_response()  # MSET: OK, or the error it raised
    except redis.exceptions.OutOfMemoryError as exc:
        raise PublishError(
            "Redis is out of memory (maxmemory): the new version does not fit next to the "
            f"kept ones ({exc})"
        ) from exc
    return int(conn.read_response())  # EXISTS: how many of the batch's keys are there


def in_blocks(
    pairs: Iterable[tuple[int, bytes | str]], size: int = 10_000
) -> Iterator[tuple[list[int], list[bytes | str]]]:
    """(user_id, body) pairs regrouped as blocks for ``write_shard``."""
    iterator = iter(pairs)
    while chunk := list(islice(iterator, size)):
        user_ids, bodies = zip(*chunk, strict=True)
        yield list(user_ids), list(bodies)


def _sample_positions(version: str, shard: Shard, expected: int | None, sample: int) -> set[int]:
    """Which users (by position) to read back at finalize: random when the count is known,
    else the first ones."""
    if expected is None:
        return set(range(sample))
    rng = random.Random(f"{version}/{shard}")
    return set(rng.sample(range(expected), min(sample, expected)))


# --- 3. finalize ----------------------------------------------------------------------------


def finalize(client: redis.Redis, version: str, *, keep: int = 2) -> Published:
    """Verify every shard of pending ``version``, switch to it atomically, prune."""
    _require_pending(client, version)
    meta = {_text(k): _text(v) for k, v in client.hgetall(rediskeys.meta(version)).items()}
    if not meta:
        raise PublishError(f"version {version}: metadata missing (evicted or deleted)")
    evicted = client.info("stats").get("evicted_keys", 0)
    if evicted > int(meta.get("evicted_keys_at_begin", evicted)):
        raise PublishError(f"Redis evicted keys while {version} was written: maxmemory too low")
    if meta.get("state") != "pending":
        raise PublishError(f"version {version}: metadata says {meta.get('state')!r}")
    reports = _shard_reports(client, version, int(meta["shards"]))
    for report in reports:
        if report.model_version != meta.get("model_version", report.model_version):
            raise PublishError(
                f"shard {report.shard} of {version} scored {report.model_version}, "
                f"the version is {meta['model_version']}"
            )
    users = sum(r.verified for r in reports)
    if "users" in meta and int(meta["users"]) != users:
        raise PublishError(f"version {version}: planned {meta['users']} users, shards hold {users}")
    _check_default(client, version)
    _check_sample(client, version, reports)
    grown = client.info("memory")["used_memory"] - int(meta.get("used_memory_at_begin", 0))
    per_user = round(grown / users, 1) if users and "used_memory_at_begin" in meta else None
    published_at = datetime.now(UTC)

    def switch(pipe: redis.client.Pipeline) -> None:
        _require_pending(pipe, version)  # watched: a cleanup racing us aborts the switch
        pipe.multi()
        pipe.hset(
            rediskeys.meta(version),
            mapping={
                "state": "published",
                "users": users,
                "published_at": published_at.isoformat(),
                "bytes_per_user": "" if per_user is None else per_user,
            },
        )
        pipe.set(rediskeys.ACTIVE, version)
        pipe.zadd(rediskeys.VERSIONS, {version: published_at.timestamp()})
        pipe.srem(PENDING, version)

    client.transaction(switch, PENDING)
    return Published(version, users, prune(client, keep), per_user)


def _shard_reports(client: redis.Redis, version: str, count: int) -> list[ShardReport]:
    raw = {_text(k): _text(v) for k, v in client.hgetall(rediskeys.shards(version)).items()}
    missing = [i for i in range(count) if str(i) not in raw]
    if missing:
        raise PublishError(f"version {version}: shards {missing} of {count} never reported")
    reports = [ShardReport(**json.loads(raw[str(i)])) for i in range(count)]
    for report in reports:
        if report.verified != report.users:
            raise PublishError(f"version {version}: shard {report.shard} incomplete")
    return reports


def _check_default(client: redis.Redis, version: str) -> None:
    body = client.get(rediskeys.default(version))
    movies = parse_body(_text(body)) if body else []
    if not movies or len(movies) > LIST_LENGTH or len(set(movies)) != len(movies):
        raise PublishError(f"version {version}: cold-start list missing or malformed")


def _check_sample(client: redis.Redis, version: str, reports: list[ShardReport]) -> None:
    expected = {user: body for report in reports for user, body in report.sample.items()}
    if not expected:
        return
    users = list(expected)
    stored = client.mget([rediskeys.user(version, int(u)) for u in users])
    wrong = [
        u for u, got in zip(users, stored, strict=True) if got is None or _text(got) != expected[u]
    ]
    if wrong:
        raise PublishError(f"version {version}: {len(wrong)} sampled bodies missing or changed")


# --- the one-process path -------------------------------------------------------------------


def publish(
    client: redis.Redis,
    bodies: Iterable[tuple[int, bytes | str]],
    *,
    default_body: bytes | str,
    meta: dict[str, str],
    users: int | None = None,
    batch: int = 1000,
    keep: int = 2,
    sample: int = 50,
) -> Published:
    """``begin``, one shard holding every user, ``finalize``: a whole publish in one call."""
    version = begin(client, meta=meta, default_body=default_body, users=users, shards=1)
    write_shard(
        client,
        version,
        Shard(0, 1),
        in_blocks(bodies, batch),
        expected=users,
        model_version=meta.get("model_version", ""),
        batch=batch,
        sample=sample,
    )
    return finalize(client, version, keep=keep)


# --- versions: what is served, rollback, pruning, cleanup -----------------------------------


def _text(value: bytes | str) -> str:
    """Clients may or may not decode responses; accept both."""
    return value.decode() if isinstance(value, bytes) else value


def active(client: redis.Redis) -> str | None:
    value = client.get(rediskeys.ACTIVE)
    return None if value is None else _text(value)


def versions(client: redis.Redis) -> list[str]:
    """Published versions, oldest first."""
    return [_text(v) for v in client.zrange(rediskeys.VERSIONS, 0, -1)]


def pending(client: redis.Redis) -> list[str]:
    return sorted(_text(v) for v in client.smembers(PENDING))


def served(client: redis.Redis) -> set[str]:
    """Versions someone reads: the active one and any an A/B variant is pinned to."""
    pinned = {_text(v) for v in client.hvals(rediskeys.VARIANT_VERSIONS)}
    current = active(client)
    return pinned | ({current} if current else set())


def status(client: redis.Redis) -> dict:
    """What is served and kept, with each version's metadata (model, snapshot, times,
    users, Redis bytes per user)."""

    def meta(version: str) -> dict[str, str]:
        raw = client.hgetall(rediskeys.meta(version))
        return {_text(k): _text(v) for k, v in raw.items()}

    current, kept, waiting = active(client), versions(client), pending(client)
    return {
        "active": current,
        "versions": kept,
        "pending": waiting,
        "meta": meta(current) if current else {},
        "kept": {v: meta(v) for v in kept},
    }


def rollback(client: redis.Redis, grace_seconds: float = 2.0, to: str | None = None) -> str:
    """Switch back to ``to``, a version published before the active one (default: the one
    right before it); unpublish every version after it and delete them.

    The switch is one atomic transaction (guarded by WATCH against a concurrent publish),
    after which the active version is again the newest published one; the deletion waits
    ``grace_seconds`` so that services still holding the old pointer in their cache keep
    reading whole answers meanwhile.
    """
    state: dict[str, list[str]] = {}

    def switch_back(pipe: redis.client.Pipeline) -> None:
        current = active(pipe)
        history = versions(pipe)
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
        pipe.sadd(PENDING, *left)

    client.transaction(switch_back, rediskeys.ACTIVE, rediskeys.VERSIONS)
    time.sleep(grace_seconds)
    _delete_unserved(client, state["left"])
    return state["target"][0]


def prune(client: redis.Redis, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` published versions, never one that is served.

    Unpublishing is one transaction watching what is served and what is published, so an
    experiment pinning one of them at the same moment (``experiments.store.start`` checks,
    in its own transaction, that its versions are published) either pins it first and it
    is kept, or is refused; never pinned to a version being deleted."""
    old: list[str] = []

    def unpublish(pipe: redis.client.Pipeline) -> None:
        keeping = served(pipe)
        old[:] = [v for v in versions(pipe)[:-keep] if v not in keeping]
        pipe.multi()
        if old:
            pipe.zrem(rediskeys.VERSIONS, *old)
            pipe.sadd(PENDING, *old)  # a crash before the deletion leaves them to cleanup

    client.transaction(unpublish, rediskeys.ACTIVE, rediskeys.VARIANT_VERSIONS, rediskeys.VERSIONS)
    _delete_unserved(client, old)
    return old


def cleanup_crashed(client: redis.Redis) -> list[str]:
    """Delete the keys of versions left pending (crashed publishes, interrupted rollbacks
    and prunes), and of rolled-back versions an experiment kept until it no longer does."""
    left, published = pending(client), set(versions(client))
    for version in published.intersection(left):
        client.srem(PENDING, version)  # published after all: only the marker is stale
    _delete_unserved(client, [v for v in left if v not in published])
    return left


def _delete_unserved(client: redis.Redis, unpublished: list[str]) -> None:
    """Delete unpublished versions nobody reads; one an A/B variant still reads stays
    pending, so the first ``cleanup_crashed`` after its experiment ends deletes it."""
    keeping = served(client)
    for version in unpublished:
        if version not in keeping:
            _delete_version(client, version)
            client.srem(PENDING, version)


def _require_pending(client: redis.Redis, version: str) -> None:
    if not client.sismember(PENDING, version):
        raise PublishError(f"version {version} is not pending (finalized, or cleaned up)")


def _delete_version(client: redis.Redis, version: str) -> None:
    batch: list = []
    for key in client.scan_iter(match=rediskeys.version_pattern(version), count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
