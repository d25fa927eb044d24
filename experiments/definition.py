"""What an experiment is: named variants, each bound to a published model version, with a
traffic split; fixed, or moved by a bandit. Validated on construction, so an ``Experiment``
that exists is one the service can route by; stored as JSON (``experiments.store``).

The definition also carries its split history, so a report can draw how a bandit moved
traffic without any other state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from contracts import ab

MODES = ("fixed", "bandit")
SOURCES = ("start", "manual", "bandit")
HISTORY_LIMIT = 1000  # split changes kept: an hourly bandit for six weeks; oldest dropped first
_VERSION_MAX = 128
_FIELDS = {
    "name",
    "variants",
    "weights",
    "mode",
    "floor",
    "control",
    "started_at",
    "stopped_at",
    "history",
    "status",
}

Status = Literal["draft", "running", "stopped"]


class DefinitionError(ValueError):
    """A definition the service could not route by; the message says which rule it breaks."""


@dataclass(frozen=True)
class SplitChange:
    """One split the experiment had from ``at`` on, and who set it."""

    at: datetime
    weights: Mapping[str, int]
    source: str

    def __post_init__(self) -> None:
        _require_time(self.at, "history time")
        if self.source not in SOURCES:
            raise DefinitionError(f"history source {self.source!r}: want one of {SOURCES}")

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "weights": dict(self.weights), "source": self.source}


@dataclass(frozen=True)
class Experiment:
    """``variants`` maps each variant to the version it answers from; ``weights`` to its
    integer share of users (``rec:{ctl}:split``). ``floor`` is the least share a bandit leaves
    each arm. Times are set by the store: ``started_at`` on start, ``stopped_at`` on stop."""

    name: str
    variants: Mapping[str, str]
    weights: Mapping[str, int]
    mode: str = "fixed"
    floor: float = 0.05
    control: str = ab.DEFAULT_VARIANT
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    history: tuple[SplitChange, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not ab.valid_variant(self.name):
            # the variant rule: the name is safe in a report path and a metric label too
            raise DefinitionError(f"bad experiment name {self.name!r}: lowercase, digits, _ -")
        _require_variants(self.variants)
        if not isinstance(self.control, str) or self.control not in self.variants:
            raise DefinitionError(f"control {self.control!r} is not one of the variants")
        _require_weights(self.weights, self.variants)
        if self.mode not in MODES:
            raise DefinitionError(f"mode {self.mode!r}: want one of {MODES}")
        floor = self.floor
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not floor >= 0:
            raise DefinitionError(f"floor {floor!r} is not a share >= 0")
        if floor * len(self.variants) > 1:
            raise DefinitionError(f"floor {floor} x {len(self.variants)} arms exceeds all traffic")
        if self.started_at is not None:
            _require_time(self.started_at, "started_at")
        if self.stopped_at is not None:
            _require_time(self.stopped_at, "stopped_at")
            if self.started_at is None or self.stopped_at < self.started_at:
                raise DefinitionError("stopped_at without a start, or before it")
        if not isinstance(self.history, tuple) or len(self.history) > HISTORY_LIMIT:
            raise DefinitionError(f"history must be a tuple of at most {HISTORY_LIMIT} changes")
        for change in self.history:
            if not isinstance(change, SplitChange):
                raise DefinitionError("history holds something other than split changes")
            _require_weights(change.weights, self.variants)

    @property
    def status(self) -> Status:
        if self.started_at is None:
            return "draft"
        return "running" if self.stopped_at is None else "stopped"

    @property
    def treatments(self) -> list[str]:
        return sorted(v for v in self.variants if v != self.control)

    def with_split(self, weights: Mapping[str, int], at: datetime, source: str) -> Experiment:
        """The same experiment with a new split, recorded in its history."""
        change = SplitChange(at, dict(weights), source)
        history = (*self.history, change)[-HISTORY_LIMIT:]
        return replace(self, weights=dict(weights), history=history)

    # --- JSON ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "variants": dict(self.variants),
            "weights": dict(self.weights),
            "mode": self.mode,
            "floor": self.floor,
            "control": self.control,
            "started_at": _iso(self.started_at),
            "stopped_at": _iso(self.stopped_at),
            "history": [change.to_dict() for change in self.history],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, raw: object) -> Experiment:
        """The inverse of ``to_dict``; anything else raises ``DefinitionError``."""
        if not isinstance(raw, dict):
            raise DefinitionError("a definition is a JSON object")
        unknown = set(raw) - _FIELDS
        if unknown:
            raise DefinitionError(f"unknown fields {sorted(map(str, unknown))}")
        missing = {"name", "variants", "weights"} - set(raw)
        if missing:
            raise DefinitionError(f"missing fields {sorted(missing)}")
        history = raw.get("history", [])
        if not isinstance(history, list):
            raise DefinitionError("history is a list")
        experiment = cls(
            name=raw["name"],
            variants=_mapping(raw["variants"], "variants"),
            weights=_mapping(raw["weights"], "weights"),
            mode=raw.get("mode", "fixed"),
            floor=raw.get("floor", 0.05),
            control=raw.get("control", ab.DEFAULT_VARIANT),
            started_at=_time(raw.get("started_at"), "started_at"),
            stopped_at=_time(raw.get("stopped_at"), "stopped_at"),
            history=tuple(_change(item) for item in history),
        )
        if "status" in raw and raw["status"] != experiment.status:
            raise DefinitionError(f"status {raw['status']!r} contradicts the times")
        return experiment

    @classmethod
    def from_json(cls, text: str | bytes) -> Experiment:
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise DefinitionError(f"not JSON: {exc}") from None
        return cls.from_dict(raw)


def _require_variants(variants: object) -> None:
    if not isinstance(variants, Mapping) or len(variants) < 2:
        raise DefinitionError("an experiment needs at least two variants (control and one more)")
    for variant, version in variants.items():
        if not isinstance(variant, str) or not ab.valid_variant(variant):
            raise DefinitionError(f"bad variant name {variant!r}")
        if (
            not isinstance(version, str)
            or not 0 < len(version) <= _VERSION_MAX
            or not version.isascii()
            or not version.isprintable()
            or " " in version
        ):
            raise DefinitionError(f"variant {variant}: bad version {version!r}")


def _require_weights(weights: object, variants: Mapping[str, str]) -> None:
    """Integers >= 0, one per variant, not all 0: exactly what ``ab.parse_split`` accepts."""
    if not isinstance(weights, Mapping) or set(weights) != set(variants):
        raise DefinitionError(f"weights must name exactly the variants {sorted(variants)}")
    for variant, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise DefinitionError(f"variant {variant}: weight {weight!r} is not an integer >= 0")
    if sum(weights.values()) == 0:
        raise DefinitionError("every weight is 0: nobody would be in the experiment")


def _require_time(value: object, what: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise DefinitionError(f"{what} must be a datetime with a time zone")


def _mapping(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise DefinitionError(f"{what} is a JSON object")
    return dict(value)


def _time(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DefinitionError(f"{what} is an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DefinitionError(f"{what} {value!r} is not ISO-8601") from None
    _require_time(parsed, what)
    return parsed


def _change(raw: object) -> SplitChange:
    if not isinstance(raw, dict) or set(raw) != {"at", "weights", "source"}:
        raise DefinitionError("a history entry is {at, weights, source}")
    at = _time(raw["at"], "history time")
    if at is None:
        raise DefinitionError("a history entry needs its time")
    return SplitChange(at, _mapping(raw["weights"], "history weights"), raw["source"])


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
