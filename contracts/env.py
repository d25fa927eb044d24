"""The one environment parser: every process reads its variables through ``read_var``.

An empty value counts as unset, so a manifest can blank a variable to get the default; a
value that cannot be used raises ``SettingsError`` naming the variable, at start-up, rather
than surfacing as odd behaviour later. Nothing is clamped silently: a value outside its
range is refused like any other bad value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable that cannot be used; the message names it."""


def environment(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """``env``, or the process environment."""
    return os.environ if env is None else env


def read_var(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    """``parse`` of the variable, or ``default`` if unset or empty; a value ``parse`` refuses
    (with ``ValueError``) raises ``SettingsError`` naming the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r}: {exc}") from None


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def at_least(low: int) -> Callable[[str], int]:
    """An integer parser refusing values under ``low``."""

    def parse(raw: str) -> int:
        value = int(raw)
        if value < low:
            raise ValueError(f"must be an integer >= {low}")
        return value

    return parse


def non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a finite number > 0")
    return value


def fraction(raw: str) -> float:
    """A share strictly between 0 and 1."""
    value = float(raw)
    if not 0 < value < 1:
        raise ValueError("must be a number between 0 and 1 (exclusive)")
    return value


def flag(raw: str) -> bool:
    """1/true/yes/on or 0/false/no/off."""
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0 (true/false, yes/no, on/off)")


def choice(*options: str) -> Callable[[str], str]:
    """A parser accepting exactly one of ``options``."""

    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return raw

    return parse


def redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return raw


def bootstrap_servers(raw: str) -> str:
    """``host:port[,host:port...]``, spaces around the commas dropped."""
    servers = [s.strip() for s in raw.split(",")]
    if not all(s.rpartition(":")[2].isdigit() and s.rpartition(":")[0] for s in servers):
        raise ValueError("must be host:port[,host:port...]")
    return ",".join(servers)
