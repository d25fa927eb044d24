"""The watch and rate events read since the oldest base snapshot, per partition in offset
order: what a user did after the snapshot their list was computed from.

Events come in already parsed (``ingest.events.parse_line``, the grammar the consumer
validates with) and leave as arrays (``Since``) that ``refresher.history`` merges into the
snapshot's rows by the rules a cut applies (``ingest.snapshot``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from ingest.events import Rate, Watch

EPOCH = datetime(1970, 1, 1)
MICROSECOND = timedelta(microseconds=1)
# partition, offset, is a rating, time (Unix microseconds), user, movie, stars (NaN: a watch)
Row = tuple[int, int, bool, int, int, str, float]


def microseconds(time: datetime) -> int:
    """A naive UTC time (the grammar's) as Unix microseconds, exactly: the journal's unit."""
    return (time - EPOCH) // MICROSECOND


@dataclass(frozen=True)
class Since:
    """Some users' events, in the order they were read (offset order per partition)."""

    partition: np.ndarray  # int64
    offset: np.ndarray  # int64
    is_rate: np.ndarray  # bool
    time: np.ndarray  # int64 Unix microseconds
    user_id: np.ndarray  # int64
    movie_id: np.ndarray  # object (str)
    rating: np.ndarray  # float64, NaN for watches

    @classmethod
    def of(cls, rows: list[Row]) -> Since:
        columns = list(zip(*rows, strict=True)) if rows else [()] * 7
        partition, offset, is_rate, time, user, movie, rating = columns
        return cls(
            np.array(partition, dtype=np.int64),
            np.array(offset, dtype=np.int64),
            np.array(is_rate, dtype=bool),
            np.array(time, dtype=np.int64),
            np.array(user, dtype=np.int64),
            np.array(movie, dtype=object),
            np.array(rating, dtype=np.float64),
        )


@dataclass
class _Partition:
    offsets: list[int] = field(default_factory=list)
    users: list[int] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)  # when each event reached the topic


class Recent:
    """Events by partition (offsets, users, broker times) and by user (``Row``s)."""

    def __init__(self) -> None:
        self._partitions: dict[int, _Partition] = defaultdict(_Partition)
        self._rows: dict[int, list[Row]] = defaultdict(list)

    def __len__(self) -> int:
        return sum(len(p.offsets) for p in self._partitions.values())

    def add(self, partition: int, offset: int, event: object, stamp: float) -> bool:
        """Keep a watch or rate (``stamp``: when it reached the topic, Unix seconds);
        anything else is not history. Returns whether it was kept."""
        match event:
            case Watch():
                is_rate, stars = False, np.nan
            case Rate():
                is_rate, stars = True, float(event.rating)
            case _:
                return False
        log = self._partitions[partition]
        if log.offsets and offset <= log.offsets[-1]:
            return False  # read again after a seek: already here
        user = event.user_id
        log.offsets.append(offset)
        log.users.append(user)
        log.stamps.append(stamp)
        row = (partition, offset, is_rate, microseconds(event.time), user, event.movie_id, stars)
        self._rows[user].append(row)
        return True

    def chunk(
        self, start: Mapping[int, int], stop: Mapping[int, int], limit: int
    ) -> tuple[dict[int, int], set[int]]:
        """Users with events from ``start`` on, at most about ``limit`` of them, in offset
        order, and how far that reaches per partition (at most ``stop``, where reading
        stands): every event before the reach is one of those users'."""
        reach: dict[int, int] = {}
        users: set[int] = set()
        budget = max(1, limit // max(1, len(stop)))
        for partition, end in stop.items():
            begin = start.get(partition, 0)
            log = self._partitions.get(partition)
            if log is None:
                reach[partition] = max(begin, end)
                continue
            first = bisect_left(log.offsets, begin)
            last = min(len(log.offsets), first + budget)
            users.update(log.users[first:last])
            reach[partition] = end if last == len(log.offsets) else log.offsets[last]
        return reach, users

    def oldest_stamp(self, start: Mapping[int, int]) -> float | None:
        """When the oldest event at or after ``start`` reached the topic; None if none."""
        stamps = []
        for partition, log in self._partitions.items():
            first = bisect_left(log.offsets, start.get(partition, 0))
            if first < len(log.offsets):
                stamps.append(log.stamps[first])
        return min(stamps) if stamps else None

    def since(self, users: Iterable[int], after: Mapping[int, int]) -> Since:
        """``users``' events past ``after`` (a snapshot's last offset per partition; a
        partition it does not name: every event)."""
        return Since.of(
            [
                row
                for user in users
                for row in self._rows.get(user, ())
                if row[1] > after.get(row[0], -1)
            ]
        )

    def forget_before(self, start: Mapping[int, int]) -> None:
        """Drop events before ``start`` (no base snapshot can need them any more)."""
        for partition, log in self._partitions.items():
            cut = bisect_left(log.offsets, start.get(partition, 0))
            if cut:
                del log.offsets[:cut], log.users[:cut], log.stamps[:cut]
        for user in list(self._rows):
            kept = [row for row in self._rows[user] if row[1] >= start.get(row[0], 0)]
            if kept:
                self._rows[user] = kept
            else:
                del self._rows[user]

    def clear(self) -> None:
        self._partitions.clear()
        self._rows.clear()
