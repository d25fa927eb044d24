"""The Redis key layout: written by ``precompute.publish``, read by the service.

One layout for a single Redis, a primary with replicas under Sentinel, and Redis Cluster.
Every published version lives under its own keys, so a publish never touches the keys the
service is reading; switching versions is one ``SET`` of ``ACTIVE``.

**Control keys** (service-wide, small) share the hash tag ``{ctl}``, so on a cluster they
all live in one slot, on one node: the transactions that switch, roll back, prune and pin
(``MULTI``/``WATCH`` over several of them) and the service's one-round-trip read of its
routing table stay single-slot, as Redis Cluster requires::

    rec:{ctl}:active            -> "<version>"           the version the service answers from
    rec:{ctl}:versions          -> zset version->time    published versions, oldest first; the
                                                         score is the publish time (the service
                                                         exports the age of what it serves)
    rec:{ctl}:pending           -> set of versions       precompute: written but not (or no
                                                         longer) published; the next run
                                                         deletes them
    rec:{ctl}:meta:{version}    -> hash                  model, snapshot, created_at, users, ...
    rec:{ctl}:shards:{version}  -> hash shard->report    precompute: each shard's verified write

(``{version}`` here means the version's name, not a hash tag; only ``{ctl}`` is literal.)
A version's metadata sits with the control keys so that the switch (``SET`` active, ``ZADD``
versions, ``SREM`` pending, ``HSET`` its meta) is one transaction on one node.

**Lists** are spread over the cluster in ``BUCKETS`` buckets, each its own hash tag
``{<version>:<bucket>}``; a user's bucket is ``bucket(user_id)`` (runs of ``RUN`` consecutive
IDs, round robin over the buckets)::

    rec:{<version>:<bucket>}:u:<user_id>  -> "<body>"   the exact response body for one user
    rec:{<version>:<bucket>}:d            -> "<body>"   the cold-start list, one copy per bucket

The service's hot path is one ``MGET user(v, uid) default(v, uid)``: both keys carry the same
tag, so it is one round trip to one node on a cluster too, never ``CROSSSLOT``; the same
command as on a single node, and ``nil, nil`` still means "this version's keys are gone"
(the service then re-reads ``rec:{ctl}:active`` at once). Why buckets, not one tag per
version (every list of a version on ONE node: no sharding at all) nor no tag on user keys
with the cold-start list only in the service's memory (a nil could not tell an unknown user
from a deleted version, and the list would need a second read per new version): 1024 copies
of a ~300-byte list cost ~0.4 MB per version next to 488 MiB for 1M users, and 1024 buckets
over 16384 slots still spread evenly over any cluster of up to ~100 primaries
(docs/BENCHMARKS.md, "Redis Cluster"). Runs of 64 consecutive user IDs per bucket let the
publisher send one ``MSET`` per (bucket, batch) with dozens of keys instead of one per key.

A/B testing adds two hashes, both optional, with the control keys; without them every user
is in ``control`` and reads ``rec:{ctl}:active``::

    rec:{ctl}:split             -> hash variant->weight  share of users per variant, integers
                                                         (e.g. control=90 treatment=10)
    rec:{ctl}:variant_versions  -> hash variant->version the version a variant answers from; a
                                                         variant missing here reads ACTIVE

The service re-reads both with ``ACTIVE`` (every VERSION_REFRESH_SECONDS), so changing
the split or a variant's version takes effect without a redeploy. ``contracts.ab`` says how a
user is assigned. A version named in ``VARIANT_VERSIONS`` must be kept by pruning as the
active one is; a variant whose version is gone gets the fallback list.

Experiments (``experiments.store``, the only writer of the two hashes above while one runs)
keep their definitions beside them; the service never reads these::

    rec:{ctl}:experiment        -> "<name>"              the running experiment; absent: none
    rec:{ctl}:experiments       -> hash name->JSON       every experiment's definition (variants,
                                                         versions, weights, mode, times, split
                                                         history), kept after it stops for the
                                                         report

Keys are short on purpose: with a million users the key names are a large share of memory
(the tag adds about 7 bytes per user key, ~1.5%). ``version_pattern`` (``rec:{<version>:*``)
can never match a control key (``rec:{ctl}...``: ``}`` follows ``ctl``, never ``:``), nor
another version's keys. Version names are printable ASCII without ``{}:*?[]\\`` and spaces
(``precompute.publish.new_version`` makes digits only).

Upgrading from the layout before Redis Cluster support (``rec:active``, ``rec:<v>:u:<uid>``):
publish once with the new code (the retrain DAG) before rolling out the new service; until
then a new service finds no active version and answers the cold-start fallback.
"""

from __future__ import annotations

import re

CONTROL_TAG = "{ctl}"  # the hash tag every service-wide key carries: one slot, one node
ACTIVE = "rec:{ctl}:active"
VERSIONS = "rec:{ctl}:versions"
SPLIT = "rec:{ctl}:split"
VARIANT_VERSIONS = "rec:{ctl}:variant_versions"
EXPERIMENT = "rec:{ctl}:experiment"
EXPERIMENTS = "rec:{ctl}:experiments"
PENDING = "rec:{ctl}:pending"

BUCKETS = 1024  # hash-tagged buckets a version's lists are spread over
RUN = 64  # consecutive user IDs that share a bucket

_VERSION_NAME = re.compile(r"[^\s{}:*?\[\]\\]+")


def valid_version(version: str) -> bool:
    """Whether ``version`` can name keys: no braces (hash tags), colons, glob characters."""
    return bool(_VERSION_NAME.fullmatch(version))


def bucket(user_id: int) -> int:
    """The bucket (hash tag) of a user's list: runs of ``RUN`` IDs, round robin."""
    return (user_id // RUN) % BUCKETS


def _tag(version: str, bucket_: int) -> str:
    return f"rec:{{{version}:{bucket_}}}:"


def meta(version: str) -> str:
    return f"rec:{{ctl}}:meta:{version}"


def shards(version: str) -> str:
    return f"rec:{{ctl}}:shards:{version}"


def control_keys(version: str) -> tuple[str, ...]:
    """A version's keys among the control keys (deleted with it)."""
    return (meta(version), shards(version))


def user(version: str, user_id: int) -> str:
    return f"{_tag(version, bucket(user_id))}u:{user_id}"


def default(version: str, user_id: int = 0) -> str:
    """The copy of the cold-start list in ``user_id``'s bucket (every copy is the same
    list; the service reads the one beside the user's key)."""
    return default_in(version, bucket(user_id))


def default_in(version: str, bucket_: int) -> str:
    """The copy of the cold-start list in one bucket."""
    return f"{_tag(version, bucket_)}d"


def defaults(version: str) -> list[str]:
    """Every copy of the cold-start list: what a publish writes and checks."""
    return [default_in(version, b) for b in range(BUCKETS)]


def user_pattern(version: str) -> str:
    """A SCAN pattern for the user keys of one version (verification samples them)."""
    return f"rec:{{{version}:*}}:u:*"


def user_of(version: str, key: str) -> int:
    """The user ID in one of ``version``'s user keys."""
    if not key.startswith(f"rec:{{{version}:"):
        raise ValueError(f"{key!r} is not a key of version {version}")
    return int(key.rpartition("}:u:")[2])


_VERSION_KEY = re.compile(
    r"rec:\{(?:ctl\}:(?:meta|shards):(?P<control>.+)|(?P<list>[^:]+):\d+\}:.*)"
)


def version_of(key: str) -> str | None:
    """The version a key belongs to (its lists, metadata or shard reports); None for a
    service-wide key."""
    match = _VERSION_KEY.fullmatch(key)
    if match is None or match["list"] == "ctl":
        return None
    return match["control"] or match["list"]


def version_pattern(version: str) -> str:
    """A SCAN pattern for every list key of one version (for cleanup; its control keys are
    ``control_keys``)."""
    return f"rec:{{{version}:*"
