"""How a user's history becomes the vector a model scores: value times recency.

Every history model here (EASE, the top-N SVD, iALS, the Mult-DAE) scores user u from a row
``x_u`` of a users x movies matrix with ``seen``'s pattern. Its entries are

    x_ui = value_ui * (floor + (1 - floor) * exp(-r_ui / tau))

- value: ``binary`` (1 for every movie seen) or ``rating`` (the stars over the highest
  rating in the data, so 4 stars of 5 is 0.8; a movie only watched counts 1);
- recency, ``r_ui`` (the second factor is 1 for ``none``):
  - ``rank``: 0 for the user's latest movie, 1 for the one before, ...; ``tau`` in movies;
  - ``relrank``: the rank over the user's number of movies; ``tau`` a share of the history;
  - ``time``: days from the user's own latest contact; ``tau`` in days.

A movie's time is its latest contact (``Interactions.last_contact``); ties in time go by
movie index, the higher one counting as the later (as ``training.split`` orders them).
Measured on MovieLens-100K (docs/MODELS.md), weighting the history a model *scores* (not the
one it learns from) by recency is worth +25-35% NDCG@20: what a user did last says most
about what they do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
from scipy import sparse

from training.algorithm import Algorithm
from training.interactions import Interactions
from training.settings import Settings

VALUES = ("binary", "rating")
RECENCIES = ("none", "rank", "relrank", "time")
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Weighting:
    value: str = "binary"
    recency: str = "none"
    tau: float = 1.0  # movies (rank), share of the history (relrank) or days (time)
    floor: float = 0.0  # the weight recency never goes below, 0 <= floor < 1

    def __post_init__(self) -> None:
        if self.value not in VALUES:
            raise ValueError(f"value must be one of {', '.join(VALUES)}, not {self.value!r}")
        if self.recency not in RECENCIES:
            raise ValueError(f"recency must be one of {', '.join(RECENCIES)}, not {self.recency!r}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, not {self.tau}")
        if not 0 <= self.floor < 1:
            raise ValueError(f"floor must be in [0, 1), not {self.floor}")

    @property
    def plain(self) -> bool:
        """1 for every movie seen: the matrix is ``seen`` itself."""
        return self.value == "binary" and self.recency == "none"

    def params(self) -> dict[str, Any]:
        return {"value": self.value, "recency": self.recency, "tau": self.tau, "floor": self.floor}


def recency_rank(last_contact: sparse.csr_matrix) -> np.ndarray:
    """For each entry of ``last_contact`` (canonical CSR), its rank in its row by time, latest
    first: 0 for the user's latest movie; ties in time go by movie index, higher first."""
    lengths = np.diff(last_contact.indptr)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    # One sort key per entry: time in the high word, movie index in the low one.
    key = (last_contact.data.astype(np.uint64) << np.uint64(32)) | last_contact.indices.astype(
        np.uint64
    )
    order = np.lexsort((key, rows))  # by row, then (time, movie) ascending
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order)) - last_contact.indptr[rows[order]]
    return lengths[rows] - 1 - position


def history_matrix(
    data: Interactions, weighting: Weighting, *, rating_top: float | None = None
) -> sparse.csr_matrix:
    """users x movies float32 CSR with ``data.seen``'s pattern (sorted indices) holding x_ui
    (see the module doc). Recency needs ``data.last_contact``: without it, a ValueError.

    ``rating_top``: the stars a rating is divided by (value ``rating``); default the highest
    rating in ``data``. A model records the one it was fit with (``training.foldin``), so a
    history folded in later is weighted as the training histories were."""
    seen = data.seen.tocsr()
    if not seen.has_sorted_indices:
        seen = seen.sorted_indices()
    values = np.ones(seen.nnz, dtype=np.float64)
    if weighting.value == "rating":
        values = _rating_values(data, seen, rating_top)
    if weighting.recency != "none":
        values *= weighting.floor + (1.0 - weighting.floor) * np.exp(
            -_recency(data, seen, weighting.recency) / weighting.tau
        )
    return sparse.csr_matrix(
        (values.astype(np.float32), seen.indices, seen.indptr), shape=seen.shape
    )


def rating_top(data: Interactions) -> float:
    """The highest rating in ``data`` (0 when it has none): what stars are divided by."""
    ratings = data.ratings
    if ratings is None or ratings.empty:
        return 0.0
    return float(ratings["rating"].max())


def _rating_values(
    data: Interactions, seen: sparse.csr_matrix, top: float | None = None
) -> np.ndarray:
    """Stars over ``top`` (default the highest rating of the data) for rated pairs, 1 for
    watched-only ones."""
    values = np.ones(seen.nnz, dtype=np.float64)
    ratings = data.ratings
    if ratings is None or ratings.empty:
        return values
    n_items = seen.shape[1]
    owner = np.repeat(np.arange(seen.shape[0], dtype=np.int64), np.diff(seen.indptr))
    entry_keys = owner * n_items + seen.indices
    rated_keys = ratings["user_idx"].to_numpy(dtype=np.int64) * n_items + ratings[
        "item_idx"
    ].to_numpy(dtype=np.int64)
    stars = ratings["rating"].to_numpy(dtype=np.float64)
    order = np.argsort(rated_keys, kind="stable")
    rated_keys, stars = rated_keys[order], stars[order]
    top = float(stars.max()) if top is None else top
    if top <= 0:
        return values
    found = np.minimum(np.searchsorted(rated_keys, entry_keys), len(rated_keys) - 1)
    rated = rated_keys[found] == entry_keys
    values[rated] = stars[found[rated]] / top
    return values


def _recency(data: Interactions, seen: sparse.csr_matrix, kind: str) -> np.ndarray:
    """r_ui for every entry of ``seen``: rank, relative rank or age in days."""
    contact = data.last_contact
    if contact is None:
        raise ValueError(
            f"recency {kind!r} needs contact times: Interactions.last_contact is None "
            "(build it from a snapshot or from frames with times)"
        )
    contact = contact.tocsr()
    if not contact.has_sorted_indices:
        contact = contact.sorted_indices()
    if not (
        np.array_equal(contact.indptr, seen.indptr)
        and np.array_equal(contact.indices, seen.indices)
    ):
        raise ValueError("last_contact does not have seen's pattern")
    lengths = np.diff(seen.indptr)
    if kind == "time":
        latest = np.zeros(len(lengths), dtype=np.int64)
        some = lengths > 0
        if some.any():
            latest[some] = np.maximum.reduceat(
                contact.data.astype(np.int64), seen.indptr[:-1][some]
            )
        age = np.repeat(latest, lengths) - contact.data.astype(np.int64)
        return age / SECONDS_PER_DAY
    rank = recency_rank(contact).astype(np.float64)
    if kind == "relrank":
        rank /= np.repeat(np.maximum(lengths, 1), lengths)
    return rank


class HistoryModel(Algorithm):
    """An algorithm that scores users from their weighted history: the weighting's knobs and
    the seed live here once. A subclass names its settings' prefix (``ease`` reads
    ``settings.ease_value``, ``ease_recency``, ``ease_recency_tau``, ``ease_recency_floor``)
    and its own hyper-parameters: ``knobs`` maps each constructor argument (kept as the
    attribute of the same name) to the settings field it comes from."""

    settings_prefix: ClassVar[str]
    knobs: ClassVar[dict[str, str]]

    def __init__(
        self,
        *,
        value: str = "binary",
        recency: str = "none",
        tau: float = 1.0,
        floor: float = 0.0,
        seed: int = 42,
    ) -> None:
        self.weighting = Weighting(value, recency, tau, floor)
        self.seed = seed

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        prefix = cls.settings_prefix
        return cls(
            **cls.own_settings(settings),
            value=getattr(settings, f"{prefix}_value"),
            recency=getattr(settings, f"{prefix}_recency"),
            tau=getattr(settings, f"{prefix}_recency_tau"),
            floor=getattr(settings, f"{prefix}_recency_floor"),
            seed=settings.seed,
        )

    @classmethod
    def own_settings(cls, settings: Settings) -> dict[str, Any]:
        """The model's own constructor arguments, from the settings."""
        return {argument: getattr(settings, field) for argument, field in cls.knobs.items()}

    def params(self) -> dict[str, Any]:
        own = {argument: getattr(self, argument) for argument in self.knobs}
        return {**own, **self.weighting.params(), "seed": self.seed}
