"""The Redis key layout: written by ``precompute.publish``, read by the service.

Every published version lives under its own prefix, so a publish never touches the keys the
service is reading; switching versions is one ``SET`` of ``ACTIVE``::

    rec:active                 -> "<version>"           the version the service answers from
    rec:versions               -> zset version->time    published versions, oldest first
    rec:{version}:meta         -> hash                  model, snapshot, created_at, users, ...
    rec:{version}:default      -> "<body>"              cold-start list for unknown users
    rec:{version}:u:{user_id}  -> "<body>"              the exact response body for one user

Keys are short on purpose: with a million users the key names are a large share of memory.
"""

from __future__ import annotations

ACTIVE = "rec:active"
VERSIONS = "rec:versions"


def prefix(version: str) -> str:
    return f"rec:{version}:"


def meta(version: str) -> str:
    return f"rec:{version}:meta"


def default(version: str) -> str:
    return f"rec:{version}:default"


def user(version: str, user_id: int) -> str:
    return f"rec:{version}:u:{user_id}"


def version_pattern(version: str) -> str:
    """A SCAN pattern for every key of one version (for cleanup)."""
    return f"rec:{version}:*"
