"""The service's configuration, read from the environment in one place.

Every knob of the lookup service and its gunicorn config is one of these variables; an
empty value counts as unset, so a manifest can blank a variable to get the default.

    Variable                  Default                   Meaning
    ------------------------  ------------------------  --------------------------------------------
    REDIS_URL                 redis://127.0.0.1:6379/0  Redis that precompute publishes to
    REDIS_TIMEOUT_MS          50                        connect and read timeout of each Redis
                                                        call: a dead Redis costs ms, not seconds
    VERSION_REFRESH_SECONDS   1.0                       how stale the cached active model version
                                                        may get before one request re-reads it
    FALLBACK_PATH             (unset)                   file holding one fallback body, served when
                                                        Redis is down and no list was seen yet
    SERVICE_BIND              127.0.0.1:8082            gunicorn bind address (host:port)
    WEB_CONCURRENCY           2                         gunicorn worker processes
    GUNICORN_THREADS          4                         threads per worker (gthread worker class)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_BIND = "127.0.0.1:8082"

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable that cannot be used; the message names it."""


@dataclass(frozen=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    redis_timeout_ms: int = 50
    version_refresh_seconds: float = 1.0
    fallback_path: Path | None = None
    bind: str = DEFAULT_BIND
    web_concurrency: int = 2
    gunicorn_threads: int = 4

    @property
    def redis_timeout_seconds(self) -> float:
        return self.redis_timeout_ms / 1000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every variable (``os.environ`` unless given); bad values raise ``SettingsError``
        at startup rather than surfacing as odd behaviour under load."""
        env = os.environ if environ is None else environ
        d = cls()
        return cls(
            redis_url=_read(env, "REDIS_URL", _redis_url, d.redis_url),
            redis_timeout_ms=_read(env, "REDIS_TIMEOUT_MS", _positive_int, d.redis_timeout_ms),
            version_refresh_seconds=_read(
                env, "VERSION_REFRESH_SECONDS", _non_negative_float, d.version_refresh_seconds
            ),
            fallback_path=_read(env, "FALLBACK_PATH", Path, d.fallback_path),
            bind=_read(env, "SERVICE_BIND", _bind, d.bind),
            web_concurrency=_read(env, "WEB_CONCURRENCY", _positive_int, d.web_concurrency),
            gunicorn_threads=_read(env, "GUNICORN_THREADS", _positive_int, d.gunicorn_threads),
        )


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r}: {exc}") from None


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return raw


def _bind(raw: str) -> str:
    if not raw.startswith("unix:") and ":" not in raw:
        raise ValueError("must be host:port or unix:/path")
    return raw
