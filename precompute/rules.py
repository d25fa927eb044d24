"""Business rules on the final list, applied here so the service still does no work.

A rule sees a block of ranked candidate lists (item indices, best first, -1 for none) and
says, position by position, whether an entry may join the entries already kept before it.
``apply_rules`` walks the positions once for the whole block (vectorised over users), keeps
an entry only if every rule admits it, and stops as soon as every list has k entries: the
greedy reading of "the best list that obeys the rules". The ranking stage hands it more
candidates than k (RULE_POOL) so that dropped movies have replacements.

``LabelCap`` is the one rule shipped: at most N movies per label, with labels for the release
year (the ID's ``+YYYY`` suffix) and the franchise prefix (the first title words). Any object
with an ``admit`` method of the same shape plugs in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from precompute.settings import Settings


class Rule(Protocol):
    def admit(self, ranked: np.ndarray, kept: np.ndarray, position: int) -> np.ndarray:
        """Bool per row: may ``ranked[:, position]`` join ``ranked[:, :position][kept]``?"""
        ...


@dataclass(frozen=True)
class LabelCap:
    """At most ``limit`` kept movies per label; ``labels`` maps item index -> label id."""

    name: str
    labels: np.ndarray
    limit: int

    def __str__(self) -> str:
        return f"{self.name}<={self.limit}"

    def admit(self, ranked: np.ndarray, kept: np.ndarray, position: int) -> np.ndarray:
        label = self.labels[ranked[:, position]]
        before = self.labels[ranked[:, :position]]
        same = (before == label[:, None]) & kept
        return np.count_nonzero(same, axis=1) < self.limit


def apply_rules(ranked: np.ndarray, rules: Sequence[Rule], k: int) -> np.ndarray:
    """The first k entries of each row that all ``rules`` admit, -1 padded; [rows, k]."""
    if not rules:
        return ranked[:, :k]
    rows, pool = ranked.shape
    kept = np.zeros((rows, pool), dtype=bool)
    count = np.zeros(rows, dtype=np.int64)
    for position in range(pool):
        admit = (ranked[:, position] >= 0) & (count < k)
        for rule in rules:
            if not admit.any():
                break
            admit &= rule.admit(ranked, kept[:, :position], position)
        kept[:, position] = admit
        count += admit
        if (count >= k).all():
            break
    order = np.argsort(~kept, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(ranked, order, axis=1)
    out = np.full((rows, k), -1, dtype=ranked.dtype)
    width = picked.shape[1]
    out[:, :width] = np.where(np.take_along_axis(kept, order, axis=1), picked, -1)
    return out


def year_labels(item_ids: np.ndarray) -> np.ndarray:
    """Label per item: its release year (IDs end in ``+YYYY``); an ID without one is alone."""
    keys = []
    for movie_id in item_ids:
        tail = str(movie_id).rpartition("+")[2]
        keys.append(f"y{tail}" if len(tail) == 4 and tail.isdigit() else f"id{movie_id}")
    return np.unique(np.array(keys, dtype=object), return_inverse=True)[1].astype(np.int64)


def prefix_labels(item_ids: np.ndarray, words: int) -> np.ndarray:
    """Label per item: the first ``words`` words of its title (the ID without the year)."""
    keys = []
    for movie_id in item_ids:
        title = str(movie_id).rpartition("+")[0] or str(movie_id)
        keys.append("+".join(title.split("+")[:words]))
    return np.unique(np.array(keys, dtype=object), return_inverse=True)[1].astype(np.int64)


def rules_from_settings(settings: Settings, item_ids: np.ndarray) -> list[Rule]:
    """The rules RULE_* switch on, for this catalogue; none by default."""
    rules: list[Rule] = []
    if settings.rule_max_per_year:
        rules.append(LabelCap("year", year_labels(item_ids), settings.rule_max_per_year))
    if settings.rule_max_per_prefix:
        labels = prefix_labels(item_ids, settings.rule_prefix_words)
        rules.append(LabelCap("prefix", labels, settings.rule_max_per_prefix))
    return rules
