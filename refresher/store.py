"""The refresher's side of Redis: which versions are read, and writing users' lists into
them without ever bringing a retired version back.

A version is refreshed while it is *served* (``rec:active``, or an A/B variant pinned to it:
every variant gets its own model's lists). A batch is two round trips: the lists of every
served version (precompute's ``publish.write_keys``: ``MSET`` per batch, per node on a
cluster, each key replaced whole, so a reader gets the old list or the new one, never a mix,
never none), then the routing read again together with each version's progress marks. A
version that is by then neither served nor published is being retired (a prune, a
rollback): its keys are being deleted, and the keys this batch wrote would outlive that
deletion if it had already passed them, so the batch deletes them itself. If the version
was still kept at the second read, any deletion starts later and finds them. Either way
nothing of a retired version survives, and a pending (unpublished) version is never
written: finalize checks its bodies against what the shards wrote.

Progress marks: ``refreshed:<partition>`` fields in the version's metadata hash
(``rediskeys.meta``) hold the offset up to which every event has been refreshed into that
version; a restarted refresher, or one that finds a version it has not seen (a publish, a
rollback, an experiment), refreshes each version from its own mark (or from the end of the
snapshot its lists were computed from, for a version without one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from contracts import rediskeys
from precompute.publish import write_keys
from precompute.redisclient import Client
from precompute.versions import as_text

MARK = "refreshed:"  # + partition: a field of the version's metadata hash


@dataclass(frozen=True)
class Routing:
    """What the service reads (active + pinned variants) and what is kept (published)."""

    active: str | None = None
    served: frozenset[str] = frozenset()
    published: frozenset[str] = frozenset()

    def kept(self, version: str) -> bool:
        return version in self.served or version in self.published


@dataclass
class Written:
    users: int = 0
    discarded: list[str] = field(default_factory=list)  # versions retired meanwhile


def read_routing(client: Client, marks: Mapping[str, Mapping[int, int]] | None = None) -> Routing:
    """One round trip (the control keys share a slot); ``marks`` (version -> partition ->
    offset) are written in the same one, after the reads."""
    pipe = client.pipeline(transaction=False)
    pipe.get(rediskeys.ACTIVE)
    pipe.hvals(rediskeys.VARIANT_VERSIONS)
    pipe.zrange(rediskeys.VERSIONS, 0, -1)
    for version, offsets in (marks or {}).items():
        if offsets:
            fields = {f"{MARK}{p}": offset for p, offset in offsets.items()}
            pipe.hset(rediskeys.meta(version), mapping=fields)  # type: ignore[arg-type]
    active, pinned, published = pipe.execute()[:3]
    current = None if active is None else as_text(active)
    served = {as_text(v) for v in pinned} | ({current} if current else set())
    return Routing(current, frozenset(served), frozenset(as_text(v) for v in published))


def read_marks(client: Client, version: str) -> tuple[str | None, str | None, dict[int, int]]:
    """(model version, snapshot, progress marks) from a version's metadata."""
    raw = {as_text(k): as_text(v) for k, v in client.hgetall(rediskeys.meta(version)).items()}
    marks = {int(k.removeprefix(MARK)): int(v) for k, v in raw.items() if k.startswith(MARK)}
    return raw.get("model_version"), raw.get("snapshot_id"), marks


def write_lists(
    client: Client,
    lists: Mapping[str, tuple[Sequence[int], Sequence[bytes]]],
    marks: Mapping[str, Mapping[int, int]],
) -> tuple[Routing, Written]:
    """Write each version's (user IDs, bodies), then record its ``marks`` and re-read the
    routing; undo what went to a version retired meanwhile (see the module doc)."""
    written = Written()
    batches = [
        ([rediskeys.user(version, u) for u in user_ids], bodies)
        for version, (user_ids, bodies) in lists.items()
        if user_ids
    ]
    written.users = write_keys(client, batches)
    routing = read_routing(client, marks)
    gone = [v for v in {*lists, *marks} if not routing.kept(v)]
    if gone:
        undo = client.pipeline(transaction=False)
        for version in gone:
            for user_id in lists.get(version, ((), ()))[0]:
                undo.delete(rediskeys.user(version, user_id))
            fields = [f"{MARK}{p}" for p in marks.get(version, {})]
            if fields:
                undo.hdel(rediskeys.meta(version), *fields)
        undo.execute()
        written.discarded = sorted(gone)
    return routing, written
