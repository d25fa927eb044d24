"""The Redis key layout: written by ``precompute.publish``, read by the service.

Every published version lives under its own prefix, so a publish never touches the keys the
service is reading; switching versions is one ``SET`` of ``ACTIVE``::

    rec:active                 -> "<version>"           the version the service answers from
    rec:versions               -> zset version->time    published versions, oldest first; the
                                                        score is the publish time (the service
                                                        exports the age of what it serves)
    rec:{version}:meta         -> hash                  model, snapshot, created_at, users, ...
    rec:{version}:default      -> "<body>"              cold-start list for unknown users
    rec:{version}:u:{user_id}  -> "<body>"              the exact response body for one user
    rec:{version}:shards       -> hash shard->report    precompute: each shard's verified write
    rec:pending                -> set of versions       precompute: written but not (or no longer)
                                                        published; the next run deletes them

A/B testing adds two hashes, both optional; without them every user is in ``control`` and
reads ``rec:active``::

    rec:split                  -> hash variant->weight  share of users per variant, integers
                                                        (e.g. control=90 treatment=10)
    rec:variant_versions       -> hash variant->version the version a variant answers from; a
                                                        variant missing here reads rec:active

The service re-reads both with ``rec:active`` (every VERSION_REFRESH_SECONDS), so changing
the split or a variant's version takes effect without a redeploy. ``contracts.ab`` says how a
user is assigned. A version named in ``rec:variant_versions`` must be kept by pruning as the
active one is; a variant whose version is gone gets the fallback list.

Experiments (``experiments.store``, the only writer of the two hashes above while one runs)
keep their definitions beside them; the service never reads these::

    rec:experiment             -> "<name>"              the running experiment; absent: none
    rec:experiments            -> hash name->JSON       every experiment's definition (variants,
                                                        versions, weights, mode, times, split
                                                        history), kept after it stops for the
                                                        report

Keys are short on purpose: with a million users the key names are a large share of memory.
The service-wide keys have a single colon, so no ``version_pattern`` can ever match them.
"""

from __future__ import annotations

ACTIVE = "rec:active"
VERSIONS = "rec:versions"
SPLIT = "rec:split"
VARIANT_VERSIONS = "rec:variant_versions"
EXPERIMENT = "rec:experiment"
EXPERIMENTS = "rec:experiments"
PENDING = "rec:pending"


def prefix(version: str) -> str:
    return f"rec:{version}:"


def meta(version: str) -> str:
    return f"rec:{version}:meta"


def default(version: str) -> str:
    return f"rec:{version}:default"


def user(version: str, user_id: int) -> str:
    return f"rec:{version}:u:{user_id}"


def user_pattern(version: str) -> str:
    """A SCAN pattern for the user keys of one version (verification samples them)."""
    return f"rec:{version}:u:*"


def user_of(version: str, key: str) -> int:
    """The user ID in one of ``version``'s user keys."""
    return int(key.removeprefix(f"rec:{version}:u:"))


def shards(version: str) -> str:
    return f"rec:{version}:shards"


def version_pattern(version: str) -> str:
    """A SCAN pattern for every key of one version (for cleanup)."""
    return f"rec:{version}:*"
