"""Which users a shard scores: ``crc32(decimal user ID) mod K``.

Stable across processes, machines and languages (not Python's salted ``hash()``), so K
workers (Airflow mapped tasks, one per shard) agree on the split without talking to each
other, and a retried shard rewrites exactly the keys it wrote before. The decimal text is
hashed rather than the integer's bytes so that anything holding the ID as a string (a shell,
SQL, another service) computes the same shard.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np

_SPEC = re.compile(r"(\d+)/(\d+)")


@dataclass(frozen=True, order=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= index < count")

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """``"i/K"``, as on the command line."""
        match = _SPEC.fullmatch(spec.strip())
        if match is None:
            raise ValueError(f"shard must look like i/K (e.g. 0/4), got {spec!r}")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def all(cls, count: int) -> list[Shard]:
        return [cls(i, count) for i in range(count)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(user_ids: np.ndarray, count: int) -> np.ndarray:
    """The shard index of every user ID."""
    hashes = np.fromiter(
        (zlib.crc32(b"%d" % u) for u in np.asarray(user_ids).tolist()),
        dtype=np.uint32,
        count=len(user_ids),
    )
    return (hashes % np.uint32(count)).astype(np.int64)


def rows_of(user_ids: np.ndarray, shard: Shard) -> np.ndarray:
    """Positions in ``user_ids`` of the users that belong to ``shard`` (ascending)."""
    if shard.count == 1:
        return np.arange(len(user_ids))
    return np.flatnonzero(shard_of(user_ids, shard.count) == shard.index)
