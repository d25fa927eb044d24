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
``http_url``; ``checked(convert, accept, refusal)`` makes one with a range. A parser only one
package needs stays in that package's settings module.

Settings are declared, not read by hand: a settings dataclass inherits ``FromEnv`` and
declares each field with ``var(NAME, parse, default)`` (or a shared ``Var``'s ``field()``,
``contracts.locations``; or ``nested(OtherSettings)``). ``Settings.from_env(mapping)`` then
fills every such field through ``read_var``, from ``mapping`` alone if one is given, else
from ``os.environ``; ``Settings.variables()`` names what it reads.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar, cast

T = TypeVar("T")
N = TypeVar("N", int, float)

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


def checked(
    convert: Callable[[str], N], accept: Callable[[N], bool], refusal: str
) -> Callable[[str], N]:
    """A parser: ``convert`` the text, then refuse (``ValueError(refusal)``) a value that
    ``accept`` rejects."""

    def parse(raw: str) -> N:
        value = convert(raw)
        if not accept(value):
            raise ValueError(refusal)
        return value

    return parse


def number(raw: str) -> float:
    """A finite number (no nan, no inf)."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def at_least(low: int) -> Callable[[str], int]:
    """An integer parser refusing values under ``low``."""
    return checked(integer, lambda value: value >= low, f"must be an integer >= {low}")


def float_at_least(low: float) -> Callable[[str], float]:
    """A number parser refusing values under ``low``."""
    return checked(number, lambda value: value >= low, f"must be a number >= {low:g}")


positive_int = checked(integer, lambda value: value >= 1, "must be a positive integer")
non_negative_int = at_least(0)
# A TCP port, 0 to 65535 (0: whatever the caller means by none).
port = checked(
    integer, lambda value: 0 <= value <= MAX_PORT, f"must be a port number, 0 to {MAX_PORT}"
)
non_negative_float = checked(number, lambda value: value >= 0, "must be a finite number >= 0")
positive_float = checked(number, lambda value: value > 0, "must be a finite number > 0")
fraction = checked(
    number, lambda value: 0 < value < 1, "must be a number between 0 and 1 (exclusive)"
)
share = checked(number, lambda value: 0 <= value < 1, "must be a number >= 0 and < 1")


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


# --- settings declared as dataclass fields ---------------------------------------------

_SPEC = "contracts.env"  # the metadata key of a field that ``FromEnv.from_env`` fills


class _Spec(Protocol):
    def read(self, env: Mapping[str, str]) -> Any: ...

    def names(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Var:
    """One variable: its name, its parser, and what it gives when unset or blank: ``default``,
    or ``default_factory()`` called at each read (a default that depends on the moment)."""

    name: str
    parse: Callable[[str], Any]
    default: Any = None
    default_factory: Callable[[], Any] | None = None

    def read(self, env: Mapping[str, str] | None = None) -> Any:
        """Its value in ``env`` (``os.environ`` unless given), through ``read_var``."""
        unset = self.default if self.default_factory is None else self.default_factory()
        return read_var(environment(env), self.name, self.parse, unset)

    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def field(self, *, required: bool = False, in_code: Any = dataclasses.MISSING) -> Any:
        """A dataclass field that ``FromEnv.from_env`` fills from this variable. A settings
        object built in code gets the variable's default, or ``in_code`` if given; a
        ``required`` field has none (code must pass it)."""
        if required:
            return dataclasses.field(metadata={_SPEC: self})
        if in_code is dataclasses.MISSING and self.default_factory is not None:
            return dataclasses.field(default_factory=self.default_factory, metadata={_SPEC: self})
        default = self.default if in_code is dataclasses.MISSING else in_code
        return dataclasses.field(default=default, metadata={_SPEC: self})


def var(
    name: str,
    parse: Callable[[str], Any],
    default: Any = None,
    *,
    default_factory: Callable[[], Any] | None = None,
    in_code: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field read from the variable ``name`` through ``parse`` (``Var.field``):
    ``default`` (or ``default_factory()``) when it is unset or blank, and in a settings
    object built in code unless ``in_code`` says otherwise there."""
    return Var(name, parse, default, default_factory).field(in_code=in_code)


@dataclass(frozen=True)
class _Nested:
    settings: type[FromEnv]

    def read(self, env: Mapping[str, str]) -> Any:
        return self.settings.from_env(env)

    def names(self) -> tuple[str, ...]:
        return self.settings.variables()


def nested(settings: type[FromEnv]) -> Any:
    """A field holding another ``FromEnv`` dataclass (by default, its defaults), which
    ``from_env`` reads from the same mapping."""
    return dataclasses.field(default_factory=settings, metadata={_SPEC: _Nested(settings)})


class FromEnv:
    """The base of a settings dataclass: ``from_env`` fills every field declared with
    ``var``, ``Var.field`` or ``nested``; any other field keeps its default."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Every variable (``os.environ`` unless given); an empty one counts as unset, a bad
        or out-of-range one raises ``SettingsError`` naming it (nothing is clamped)."""
        env = environment(environ)
        return cast(Any, cls)(**{name: spec.read(env) for name, spec in _specs(cls)})

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        """The variables ``from_env`` reads, in field order."""
        return tuple(variable for _, spec in _specs(cls) for variable in spec.names())


def _specs(cls: type) -> Iterator[tuple[str, _Spec]]:
    for f in dataclasses.fields(cast(Any, cls)):
        if _SPEC in f.metadata:
            yield f.name, f.metadata[_SPEC]
