"""The one environment parser: every process reads its variables through ``read_var``.

An empty value counts as unset, so a manifest can blank a variable to get the default; a
value that cannot be used raises ``SettingsError`` naming the variable, at start-up, rather
than surfacing as odd behaviour later. Nothing is clamped silently: a value outside its
range is refused like any other bad value.

The parsers (each takes the stripped text and returns the value or raises ``ValueError``):
integers ``integer``, ``positive_int``, ``non_negative_int``, ``at_least(n)``, ``port``;
numbers (finite: no nan or inf) ``number``, ``positive_float``, ``non_negative_float``,
``float_at_least(x)``, ``fraction`` (0 < x < 1), ``share`` (0 <= x < 1); ``flag``,
``choice(*options)``, ``comma_list``; addresses ``redis_url``, ``bootstrap_servers``,
``http_url``. A parser only one package needs stays in that package's settings module.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

MAX_PORT = 65_535


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


_INTEGER = re.compile(r"[+-]?[0-9]+")


def integer(raw: str) -> int:
    """A decimal integer: ASCII digits with an optional sign (no ``1_000``, no ``1.0``)."""
    if not _INTEGER.fullmatch(raw):
        raise ValueError("expected an integer")
    return int(raw)


def at_least(low: int) -> Callable[[str], int]:
    """An integer parser refusing values under ``low``."""

    def parse(raw: str) -> int:
        value = integer(raw)
        if value < low:
            raise ValueError(f"must be an integer >= {low}")
        return value

    return parse


def positive_int(raw: str) -> int:
    """A decimal integer >= 1."""
    value = integer(raw)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def non_negative_int(raw: str) -> int:
    """A decimal integer >= 0."""
    value = integer(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def port(raw: str) -> int:
    """A TCP port, 0 to 65535 (0: whatever the caller means by none)."""
    value = integer(raw)
    if not 0 <= value <= MAX_PORT:
        raise ValueError(f"must be a port number, 0 to {MAX_PORT}")
    return value


def number(raw: str) -> float:
    """A finite number (no nan, no inf)."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def float_at_least(low: float) -> Callable[[str], float]:
    """A number parser refusing values under ``low``."""

    def parse(raw: str) -> float:
        value = number(raw)
        if value < low:
            raise ValueError(f"must be a number >= {low:g}")
        return value

    return parse


def non_negative_float(raw: str) -> float:
    value = number(raw)
    if value < 0:
        raise ValueError("must be a finite number >= 0")
    return value


def positive_float(raw: str) -> float:
    value = number(raw)
    if value <= 0:
        raise ValueError("must be a finite number > 0")
    return value


def fraction(raw: str) -> float:
    """A share strictly between 0 and 1."""
    value = number(raw)
    if not 0 < value < 1:
        raise ValueError("must be a number between 0 and 1 (exclusive)")
    return value


def share(raw: str) -> float:
    """A share from 0 (inclusive) up to 1 (exclusive)."""
    value = number(raw)
    if not 0 <= value < 1:
        raise ValueError("must be a number >= 0 and < 1")
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


def comma_list(raw: str) -> tuple[str, ...]:
    """``a, b,c`` -> ("a", "b", "c"): items stripped, empty ones dropped; at least one."""
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items:
        raise ValueError("must name at least one item (comma-separated)")
    return items


def http_url(raw: str) -> str:
    """An ``http://`` or ``https://`` URL with a host."""
    scheme, sep, rest = raw.partition("://")
    if scheme not in ("http", "https") or not sep or not rest.split("/")[0]:
        raise ValueError("must be an http:// or https:// URL")
    return raw
