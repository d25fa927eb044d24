"""A user's full history for one published version: the rows of the snapshot its model was
trained on, plus what the stream said since, merged as a snapshot cut would merge them.

A cut keeps each (user, movie)'s latest rating (by time, then offset) and each watched
pair's first and last time (``ingest.snapshot``); the merge applies the same rules to the
two parts: the later rating wins (ties to the newer event, and every event since is newer
than the snapshot's), a pair's last contact is the latest of its times. The result is
indexed on the model's catalogue (movies the model has never seen can be neither scored nor
recommended by it) as ``training.interactions.Interactions``, through the function that
indexes a snapshot, so what precompute would get from a cut is what a batch gets.

All in numpy, on the snapshot's rows indexed once per version: a batch of a thousand users
costs a few milliseconds (the pandas merge it replaced cost 30 to 60).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ingest.snapshot import Snapshot
from refresher.recent import Since
from training.factors import FactorModel
from training.interactions import Interactions, contact_matrices, first_of_runs
from training.registry import ModelMeta

SECOND = 1_000_000  # microseconds


@dataclass(frozen=True)
class Rows:
    """A snapshot table's rows of the model's catalogue, sorted by user."""

    user_id: np.ndarray  # int64, sorted
    item: np.ndarray  # int64, the movie's index in the model's catalogue
    time: np.ndarray  # int64 Unix microseconds: a rating's time, a watch's last time
    rating: np.ndarray  # float32; NaN for watches

    @classmethod
    def of(cls, table: pd.DataFrame, catalogue: pd.Index, time: str) -> Rows:
        item = catalogue.get_indexer(table["movie_id"])
        users = table["user_id"].to_numpy().astype(np.int64)
        keep = np.flatnonzero(item >= 0)
        order = keep[np.argsort(users[keep], kind="stable")]
        stars = (
            table["rating"].to_numpy(dtype=np.float32)[order]
            if "rating" in table.columns
            else np.full(len(order), np.nan, dtype=np.float32)
        )
        return cls(
            users[order],
            item[order].astype(np.int64),
            table[time].to_numpy(dtype="datetime64[us]").astype(np.int64)[order],
            stars,
        )

    def at(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of ``user_ids``' (sorted) rows, and each one's user as an index into
        ``user_ids``."""
        lo = np.searchsorted(self.user_id, user_ids, side="left")
        lengths = np.searchsorted(self.user_id, user_ids, side="right") - lo
        starts = np.cumsum(lengths) - lengths
        owners = np.repeat(np.arange(len(user_ids), dtype=np.int64), lengths)
        return np.arange(int(lengths.sum())) + np.repeat(lo - starts, lengths), owners


@dataclass(frozen=True)
class OnBase(Interactions):
    """Some users' histories, ranked against the base snapshot's popularity (the order
    precompute fills short lists and ranks users without factors by), not their own."""

    base_popularity: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def popularity(self) -> np.ndarray:
        return self.base_popularity


@dataclass(frozen=True)
class Base:
    """A published version's model and the snapshot it was trained on."""

    model: FactorModel
    meta: ModelMeta
    snapshot: Snapshot

    @cached_property
    def end(self) -> dict[int, int]:
        """The last offset the snapshot holds, per partition."""
        return {int(p): int(last) for p, (_, last) in self.snapshot.manifest.offsets.items()}

    @cached_property
    def data(self) -> Interactions:
        return Interactions.from_snapshot(self.snapshot)

    @cached_property
    def popularity(self) -> np.ndarray:
        return self.data.popularity()

    @cached_property
    def catalogue(self) -> pd.Index:
        return pd.Index(self.model.item_ids)

    @cached_property
    def positions(self) -> dict[str, int]:
        """Each catalogue movie's index: a batch's few events are looked up here, faster than
        through a pandas index (which first converts them to an index of its own)."""
        return {movie: i for i, movie in enumerate(self.model.item_ids)}

    @cached_property
    def rated(self) -> Rows:
        return Rows.of(self.snapshot.ratings, self.catalogue, "time")

    @cached_property
    def watched(self) -> Rows:
        return Rows.of(self.snapshot.watches, self.catalogue, "last_time")

    def prepare(self) -> Base:
        """Index the snapshot now (a second or so at a million users), not in the first
        batch that needs it."""
        _ = self.data, self.popularity, self.positions, self.rated, self.watched
        return self

    def knows(self, user_ids: np.ndarray) -> np.ndarray:
        """Whether each user is in the snapshot (precompute published a list for them)."""
        users = self.data.user_ids
        if len(users) == 0:
            return np.zeros(len(user_ids), dtype=bool)
        pos = np.minimum(np.searchsorted(users, user_ids), len(users) - 1)
        return users[pos] == user_ids

    def histories(self, user_ids: np.ndarray, since: Since) -> OnBase:
        """``user_ids``' (sorted) histories: the snapshot's rows and ``since``, their events
        after the snapshot."""
        n_items = len(self.model.item_ids)
        positions = self.positions
        item = np.fromiter(
            (positions.get(m, -1) for m in since.movie_id),
            dtype=np.int64,
            count=len(since.movie_id),
        )
        new = item >= 0
        # Ratings: the snapshot's, then the new ones in a cut's order (time, then offset).
        # Stable-sorted by pair, then time, each pair's last row is its latest rating, the
        # newer event winning a tie.
        rates = np.flatnonzero(new & since.is_rate)
        rates = rates[np.lexsort((since.offset[rates], since.partition[rates], since.time[rates]))]
        base, rate_keys = self._pairs(self.rated, user_ids, since, rates, item)
        rate_times = np.concatenate([self.rated.time[base], since.time[rates]])
        order = np.lexsort((rate_times, rate_keys))
        latest = order[first_of_runs(rate_keys[order][::-1])[::-1]]
        stars = np.concatenate([self.rated.rating[base], since.rating[rates].astype(np.float32)])
        rated = pd.DataFrame(
            {
                "user_idx": rate_keys[latest] // n_items,
                "item_idx": rate_keys[latest] % n_items,
                "rating": stars[latest],
            }
        )
        # Contacts: every rating and watch, each pair's latest time its last contact.
        watches = np.flatnonzero(new & ~since.is_rate)
        base, watch_keys = self._pairs(self.watched, user_ids, since, watches, item)
        watch_times = np.concatenate([self.watched.time[base], since.time[watches]])
        seen, last_contact = contact_matrices(
            (len(user_ids), n_items),
            np.concatenate([rate_keys, watch_keys]),
            np.floor_divide(np.concatenate([rate_times, watch_times]), SECOND),
        )
        return OnBase(
            user_ids,
            self.model.item_ids,
            rated,
            seen,
            last_contact,
            base_popularity=self.popularity,
        )

    def _pairs(
        self, rows: Rows, user_ids: np.ndarray, since: Since, picks: np.ndarray, item: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The positions of ``user_ids``' rows in ``rows``, and the pair keys (user index x
        movies + movie index) of those rows followed by those of ``since[picks]``."""
        base, owners = rows.at(user_ids)
        n_items = len(self.model.item_ids)
        users = np.concatenate([owners, np.searchsorted(user_ids, since.user_id[picks])])
        return base, users * n_items + np.concatenate([rows.item[base], item[picks]])
