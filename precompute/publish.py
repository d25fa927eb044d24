"""The Redis write protocol: a new version under its own keys, verified, then one atomic switch.

The service reads ``rediskeys.ACTIVE`` to know which version to answer from, then the
user's key and the default key *of that version*. A version's keys are written while it is
only listed in ``rediskeys.PENDING``, and deleted only when no reader can still be using
it, so a reader always gets one whole version: the old or the new, never a mix, never a
missing key. Once it is served, only the refresher (``refresher.store``) changes it, one
user's key at a time, each replaced whole: a user's newer list of the same version.

A publish is three steps, so that K workers can write K shards in parallel (Airflow maps
over the shards) and one finalizer switches:

1. ``begin``: remove what crashed publishes left (``versions.cleanup_crashed``), pick a version,
   list it as pending with its metadata (model, snapshot, planned users and shards), then
   write its cold-start list (a copy per bucket, ``rediskeys.defaults``).
2. ``write_shard`` (once per shard, idempotent, so a retried shard is harmless): ``MSET``
   of the shard's bodies in batches, each followed by an ``EXISTS`` of the same keys in the
   same round trip, so the count recorded is what Redis holds, not what was sent; replies
   are read one batch late, so Redis stores a batch while this process builds the next.
   On Redis Cluster a batch is split by slot (one ``MSET`` + ``EXISTS`` per bucket) and
   pipelined per node, each node on its own connection, all nodes written at once.
   Then a report (users, verified count, a sample of bodies) in ``rediskeys.shards(version)``.
3. ``finalize``: every planned shard reported, verified counts add up to the planned users,
   the sampled bodies read back equal what the shards wrote, every copy of the cold-start
   list is valid, Redis evicted nothing meanwhile (on any primary), and every replica has
   acknowledged the writes (``WAIT``, so a failover right after the switch loses nothing).
   Only then one ``MULTI`` on the control keys (one slot: ``rediskeys``): ``SET`` the active
   pointer, record the publish time, mark the metadata published, drop it from pending. Then
   ``versions.prune`` deletes all but the newest ``keep`` versions (never one that is served).

A crash anywhere before the switch leaves the active version untouched; the half-written
version stays pending and the next ``begin`` deletes it. What is served, rollback and pruning
are ``precompute.versions``; the same three steps from a model (scoring, settings, a client
of their own) are ``precompute.steps``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import cast

import redis
from redis.crc import key_slot

from contracts import rediskeys
from contracts.response import LIST_LENGTH, parse_body
from precompute import redisclient, versions
from precompute.redisclient import Client
from precompute.shard import Shard
from precompute.versions import PublishError, as_text, require_pending


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
    client: Client,
    *,
    meta: dict[str, str],
    default_body: bytes | str,
    users: int | None,
    shards: int = 1,
) -> str:
    """Open a pending version: cold-start list and metadata written, nothing served yet.

    ``users`` is the number of users the shards must add up to (None: whatever they write).
    """
    versions.cleanup_crashed(client)
    version = new_version()
    plan = {
        **meta,
        "version": version,
        "state": "pending",
        "created_at": datetime.now(UTC).isoformat(),
        "shards": shards,
        "evicted_keys_at_begin": redisclient.info_total(client, "stats", "evicted_keys"),
    }
    if users is not None:
        plan["users"] = users
    with client.pipeline(transaction=True) as pipe:  # control keys: one slot
        pipe.sadd(rediskeys.PENDING, version)
        # redis-py types the mapping with an invariant key union: no dict[str, ...] fits it.
        pipe.hset(rediskeys.meta(version), mapping=plan)  # type: ignore[arg-type]
        pipe.execute()
    copies = rediskeys.defaults(version)
    if write_keys(client, [(copies, [default_body] * len(copies))]) != len(copies):
        raise PublishError(f"version {version}: cold-start list not stored")
    # Measured after the cold-start copies, so bytes_per_user counts the users' lists only.
    used = redisclient.info_total(client, "memory", "used_memory")
    client.hset(rediskeys.meta(version), "used_memory_at_begin", used)
    return version


# --- 2. one shard ---------------------------------------------------------------------------


def write_shard(
    client: Client,
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
    require_pending(client, version)
    picks = _sample_positions(version, shard, expected, sample)
    chosen: dict[str, str] = {}
    written = 0

    def batches() -> Iterator[tuple[list[str], Sequence[bytes | str]]]:
        nonlocal written
        for user_ids, bodies in blocks:
            for lo in range(0, len(user_ids), batch):
                ids, values = user_ids[lo : lo + batch], bodies[lo : lo + batch]
                keys = [rediskeys.user(version, u) for u in ids]
                for i in picks.intersection(range(written, written + len(keys))):
                    chosen[str(ids[i - written])] = as_text(values[i - written])
                written += len(keys)
                yield keys, values

    verified = write_keys(client, batches())
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
    if not client.sismember(rediskeys.PENDING, version):
        # Another run's cleanup took the version away meanwhile: our keys belong to no one.
        versions.delete(client, version)
        raise PublishError(f"version {version} stopped being pending during shard {shard}")
    client.hset(rediskeys.shards(version), str(shard.index), json.dumps(asdict(report)))
    return report


def write_keys(client: Client, batches: Iterable[tuple[list[str], Sequence[bytes | str]]]) -> int:
    """``MSET`` each batch of (keys, values), then ``EXISTS`` of its keys; returns how many
    keys exist.

    The replies to a batch are read only after the next batch is built and packed, so
    Redis works on one batch while this process prepares the next (with a plain pipeline
    each side would wait for the other). Hence connections of our own: one per node; on a
    cluster a batch becomes one ``MSET`` and one ``EXISTS`` per slot, sent to the slot's
    primary (``redisclient.node_for``), every node's share sent before any reply is read.
    """
    writers: dict[str, _NodeWriter] = {}
    verified = 0
    try:
        for keys, values in batches:
            for name, node, commands in _by_node(client, keys, values):
                writer = writers.get(name)
                if writer is None:
                    writer = writers[name] = _NodeWriter(node)
                verified += writer.send(commands)
        for writer in writers.values():
            verified += writer.drain()
    except BaseException:
        for writer in writers.values():
            writer.abandon()  # replies may be left unread: never hand these sockets back
        raise
    for writer in writers.values():
        writer.release()
    return verified


def _by_node(
    client: Client, keys: list[str], values: Sequence[bytes | str]
) -> Iterator[tuple[str, redis.Redis, list[tuple]]]:
    """(node name, node client, commands) for one batch: on one node, the batch's ``MSET``
    and ``EXISTS``; on a cluster, one pair per slot, grouped by the slot's primary."""
    if not redisclient.is_cluster(client):
        args: list = [None] * (2 * len(keys))
        args[0::2], args[1::2] = keys, values
        yield "", cast(redis.Redis, client), [("MSET", *args), ("EXISTS", *keys)]
        return
    slots: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        slots.setdefault(key_slot(key.encode()), []).append(i)
    nodes: dict[str, tuple[redis.Redis, list[tuple]]] = {}
    for positions in slots.values():
        name, node = redisclient.node_for(client, keys[positions[0]])
        commands = nodes.setdefault(name, (node, []))[1]
        pairs: list = []
        for i in positions:
            pairs += (keys[i], values[i])
        commands += [("MSET", *pairs), ("EXISTS", *(keys[i] for i in positions))]
    for name, (node, commands) in nodes.items():
        yield name, node, commands


class _NodeWriter:
    """One node's connection, with the replies of the commands sent last still unread."""

    def __init__(self, node: redis.Redis) -> None:
        self.pool = node.connection_pool
        self.conn = self.pool.get_connection()
        self.unread = 0

    def send(self, commands: list[tuple]) -> int:
        """Pack ``commands`` (MSET, EXISTS pairs), read the previous ones' replies, send;
        returns the keys those previous ``EXISTS`` counted."""
        packed = self.conn.pack_commands(commands)
        verified = self.drain()
        self.conn.send_packed_command(packed, check_health=False)
        self.unread = len(commands)
        return verified

    def drain(self) -> int:
        verified = 0
        for _ in range(self.unread // 2):
            verified += _replies(self.conn)
        self.unread = 0
        return verified

    def abandon(self) -> None:
        self.conn.disconnect()
        self.release()

    def release(self) -> None:
        self.pool.release(self.conn)


def _replies(conn: redis.connection.AbstractConnection) -> int:
    try:
        conn.read_response()  # MSET: OK, or the error it raised
    except redis.exceptions.OutOfMemoryError as exc:
        conn.read_response()  # its EXISTS, so the socket stays in step
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


def finalize(client: Client, version: str, *, keep: int = 2) -> Published:
    """Verify every shard of pending ``version``, switch to it atomically, prune."""
    require_pending(client, version)
    meta = versions.meta(client, version)
    if not meta:
        raise PublishError(f"version {version}: metadata missing (evicted or deleted)")
    evicted = redisclient.info_total(client, "stats", "evicted_keys")
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
    try:
        redisclient.wait_for_replicas(client)
    except redisclient.ReplicationError as exc:
        raise PublishError(f"version {version}: {exc}") from exc
    used = redisclient.info_total(client, "memory", "used_memory")
    grown = used - int(meta.get("used_memory_at_begin", 0))
    per_user = round(grown / users, 1) if users and "used_memory_at_begin" in meta else None
    published_at = datetime.now(UTC)

    def switch(pipe: redis.client.Pipeline) -> None:
        require_pending(pipe, version)  # watched: a cleanup racing us aborts the switch
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
        pipe.srem(rediskeys.PENDING, version)

    client.transaction(switch, rediskeys.PENDING)
    return Published(version, users, versions.prune(client, keep), per_user)


def _shard_reports(client: Client, version: str, count: int) -> list[ShardReport]:
    raw = {as_text(k): as_text(v) for k, v in client.hgetall(rediskeys.shards(version)).items()}
    missing = [i for i in range(count) if str(i) not in raw]
    if missing:
        raise PublishError(f"version {version}: shards {missing} of {count} never reported")
    reports = [ShardReport(**json.loads(raw[str(i)])) for i in range(count)]
    for report in reports:
        if report.verified != report.users:
            raise PublishError(f"version {version}: shard {report.shard} incomplete")
    return reports


def _check_default(client: Client, version: str) -> None:
    copies = redisclient.mget(client, rediskeys.defaults(version))
    body = copies[0]
    movies = parse_body(as_text(body)) if body else []
    if not movies or len(movies) > LIST_LENGTH or len(set(movies)) != len(movies):
        raise PublishError(f"version {version}: cold-start list missing or malformed")
    if any(copy != body for copy in copies):
        raise PublishError(f"version {version}: a copy of the cold-start list differs or is gone")


def _check_sample(client: Client, version: str, reports: list[ShardReport]) -> None:
    expected = {user: body for report in reports for user, body in report.sample.items()}
    if not expected:
        return
    users = list(expected)
    stored = redisclient.mget(client, [rediskeys.user(version, int(u)) for u in users])
    wrong = [
        u
        for u, got in zip(users, stored, strict=True)
        if got is None or as_text(got) != expected[u]
    ]
    if wrong:
        raise PublishError(f"version {version}: {len(wrong)} sampled bodies missing or changed")
