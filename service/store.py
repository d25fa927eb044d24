"""Answers ``/recommend/<userid>`` from the bodies precompute published to Redis.

Hot path: exactly one Redis round trip, ``MGET user(v, uid) default(v)``, where ``v`` is the
active version cached in this process. The cache is refreshed lazily: the first request after
``VERSION_REFRESH_SECONDS`` takes a non-blocking lock and pays one extra ``GET rec:active``;
requests arriving meanwhile keep using the cached version instead of queueing behind it. Lazy
beats a background thread here: nothing to start after gunicorn forks, nothing to stop, and an
idle worker costs Redis nothing. Only a process that has no version yet waits for the lock.
The cache is also dropped as soon as the cached version's keys are gone (precompute's rollback
deletes the version it leaves), so that costs one request, not a whole interval. A pooled
connection idle for HEALTH_CHECK_SECONDS is PINGed before use: rare, and it finds dead sockets.

Failures never reach Flask. On a Redis error or timeout, or when no version is active, the
answer comes from the last cold-start body this process saw, else from ``FALLBACK_PATH``,
else it is ``Unavailable``. The client has short timeouts and retries once only on a
connection error (a stale pooled socket after a Redis restart), never on a timeout, so a dead
Redis costs about one timeout per request.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from service import rediskeys, response
from service.settings import Settings

log = logging.getLogger(__name__)

Source = Literal["personal", "cold_start", "fallback"]

FILE_VERSION = "fallback-file"  # X-Model-Version of an answer read from FALLBACK_PATH
HEALTH_CHECK_SECONDS = 30  # PING a pooled connection idle longer than this before using it
LOG_EVERY_SECONDS = 10.0  # while degraded, repeat the same reason at most this often
_VERSION = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII: safe in a key and a header


@dataclass(frozen=True, slots=True)
class Answer:
    """A body to send as is, the model version it came from, and why it was chosen."""

    body: bytes
    version: str
    source: Source


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Nothing at all to answer with; ``reason`` is one line for the 503 body."""

    reason: str


class RecommendationStore:
    """Thread-safe: one per worker process, shared by its threads."""

    def __init__(
        self,
        client: redis.Redis,
        version_refresh_seconds: float = 1.0,
        fallback_path: Path | None = None,
    ) -> None:
        self._client = client
        self._refresh_seconds = version_refresh_seconds
        self._version: str | None = None
        self._version_expires = float("-inf")  # monotonic; -inf: never read, 0.0: stale now
        self._version_lock = threading.Lock()
        self._refresh_attempts = 0
        self._last_default: Answer | None = None
        self._file_answer = _read_fallback_file(fallback_path) if fallback_path else None
        self._logged: tuple[str, float] = ("", float("-inf"))

    @classmethod
    def from_settings(cls, settings: Settings) -> RecommendationStore:
        timeout = settings.redis_timeout_seconds
        pool = redis.ConnectionPool.from_url(
            settings.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            socket_keepalive=True,
            health_check_interval=HEALTH_CHECK_SECONDS,
            # One connection per gunicorn thread is all the hot path uses; the slack covers
            # the refresh GET. Exhaustion raises ConnectionError, which means fallback.
            max_connections=settings.gunicorn_threads + 2,
            retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        )
        return cls(
            redis.Redis(connection_pool=pool),
            settings.version_refresh_seconds,
            settings.fallback_path,
        )

    def recommend(self, user_id: int) -> Answer | Unavailable:
        """Never raises: every failure turns into a fallback answer or ``Unavailable``."""
        try:
            version = self._active_version()
            if version is None:
                return self._fallback(
                    f"no active version in Redis ({rediskeys.ACTIVE} unset or malformed)"
                )
            user_body, default_body = self._client.mget(
                rediskeys.user(version, user_id), rediskeys.default(version)
            )
        except RedisError as exc:
            return self._fallback(f"redis error: {type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug must still not cost availability
            log.exception("unexpected error reading recommendations")
            return self._fallback(f"unexpected error: {type(exc).__name__}")
        if default_body:
            self._last_default = Answer(default_body, version, "fallback")
        if user_body:
            return Answer(user_body, version, "personal")
        if default_body:
            return Answer(default_body, version, "cold_start")
        # The cached version is gone (a rollback deletes the version it leaves at once), or
        # ACTIVE is broken: re-read ACTIVE on the next request instead of after the interval.
        self._version_expires = min(self._version_expires, 0.0)
        return self._fallback(f"version {version} has no default list")

    def close(self) -> None:
        self._client.close()
        self._client.connection_pool.disconnect()

    def _active_version(self) -> str | None:
        """The cached version; at most one caller per interval re-reads it from Redis."""
        if time.monotonic() < self._version_expires:
            return self._version
        never_read = self._version_expires == float("-inf")
        attempts = self._refresh_attempts
        if not self._version_lock.acquire(blocking=never_read):
            return self._version  # someone else is refreshing: stale by a moment is fine
        try:
            if time.monotonic() < self._version_expires:
                return self._version  # refreshed while we waited for the lock
            if self._refresh_attempts != attempts:
                # Another refresh failed meanwhile; trying again in turn would stack timeouts.
                if never_read:
                    raise RedisConnectionError("reading the active version just failed")
                return self._version
            self._refresh_attempts += 1
            raw = self._client.get(rediskeys.ACTIVE)  # a RedisError leaves the cache expired
            version = _parse_version(raw)
            if version != self._version:
                log.info("active model version: %s -> %s", self._version, version)
            self._version = version
            self._version_expires = time.monotonic() + self._refresh_seconds
            return version
        finally:
            self._version_lock.release()

    def _fallback(self, reason: str) -> Answer | Unavailable:
        reason = " ".join(reason.split())  # one line, whatever the exception said
        answer = self._last_default or self._file_answer
        if answer is None:
            self._log(f"no fallback to answer with: {reason}")
            return Unavailable(f"no recommendations available: {reason}")
        self._log(f"answering from fallback {answer.version}: {reason}")
        return answer

    def _log(self, line: str) -> None:
        """One line per new reason, then at most every LOG_EVERY_SECONDS, so an outage at
        hundreds of requests per second does not turn into as many log lines."""
        now = time.monotonic()
        last_line, last_time = self._logged
        if line != last_line or now - last_time >= LOG_EVERY_SECONDS:
            self._logged = (line, now)
            log.warning("%s", line)


def _parse_version(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    version = raw.decode("ascii", "replace")
    if not _VERSION.fullmatch(version):
        log.error("ignoring malformed %s value %r", rediskeys.ACTIVE, raw[:200])
        return None
    return version


def _read_fallback_file(path: Path) -> Answer | None:
    """A body checked against the response format now, so a bad file is a log line at startup
    and not a broken answer during an outage."""
    try:
        text = path.read_text(encoding="utf-8").strip()
        if not text:
            raise response.BadListError("empty file")
        body = response.format_body(response.parse_body(text))
    except (OSError, UnicodeDecodeError, response.BadListError) as exc:
        log.error("FALLBACK_PATH %s unusable, ignoring it: %s", path, exc)
        return None
    return Answer(body.encode("utf-8"), FILE_VERSION, "fallback")
