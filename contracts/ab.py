"""A/B assignment: which variant a user is in, given the split stored in ``rediskeys.SPLIT``.

A user's bucket is a keyed BLAKE2b hash of the decimal user ID, taken modulo ``BUCKETS``: the
same in every process, replica and release (Python's ``hash()`` is salted per process, so two
workers would disagree). The split maps variants, in name order, onto consecutive bucket
ranges sized by their weights. Growing one variant's share therefore only moves users into
it from its neighbour; it never reshuffles everybody, so a ramp-up (90/10 -> 80/20) keeps the
treatment's existing users in the treatment.

Pure standard library, so analysis code can import it to recompute assignments.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_VARIANT = "control"  # everyone, while no split is stored
BUCKETS = 10_000  # split granularity: 0.01 % of users
_KEY = b"recsys-ab-v1"  # changing it reassigns every user: only for a new experiment design
_VARIANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # safe in a header and a metric label


def bucket(user_id: int) -> int:
    """The user's bucket in ``range(BUCKETS)``; stable across processes and releases."""
    digest = hashlib.blake2b(b"%d" % user_id, digest_size=8, key=_KEY).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class TrafficSplit:
    """Variants with the exclusive upper bound of their bucket range, ascending."""

    ranges: tuple[tuple[int, str], ...]

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(variant for _, variant in self.ranges)

    def assign(self, user_id: int) -> str:
        if len(self.ranges) == 1:  # the common case: no experiment, no hashing
            return self.ranges[0][1]
        b = bucket(user_id)
        for upper, variant in self.ranges:
            if b < upper:
                return variant
        return self.ranges[-1][1]  # unreachable: the last bound is BUCKETS


EVERYONE_IN_CONTROL = TrafficSplit(((BUCKETS, DEFAULT_VARIANT),))


def parse_split(raw: Mapping[bytes, bytes | str] | Mapping[str, bytes | str]) -> TrafficSplit:
    """The split from ``HGETALL rec:{ctl}:split``; empty means no experiment. Raises ``ValueError``
    on a bad name or weight, so a typo is refused as a whole rather than half-applied."""
    if not raw:
        return EVERYONE_IN_CONTROL
    weights: dict[str, int] = {}
    for name, weight in raw.items():
        variant = _text(name)
        if not _VARIANT.fullmatch(variant):
            raise ValueError(f"bad variant name {variant!r}: want {_VARIANT.pattern}")
        text = _text(weight).strip()
        if not text.isascii() or not text.isdigit():
            raise ValueError(f"variant {variant}: weight {text!r} is not an integer >= 0")
        weights[variant] = int(text)
    total = sum(weights.values())
    if total == 0:
        raise ValueError("every weight is 0")
    ranges = []
    cumulative = 0
    for variant in sorted(weights):
        if weights[variant] == 0:
            continue
        cumulative += weights[variant]
        ranges.append((cumulative * BUCKETS // total, variant))
    return TrafficSplit(tuple(ranges))


def valid_variant(name: str) -> bool:
    return _VARIANT.fullmatch(name) is not None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
