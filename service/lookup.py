"""Answers ``/recommend/<userid>`` from the bodies precompute published to Redis.

Hot path: exactly one Redis round trip, ``MGET user(v, uid) default(v, uid)``, where ``v`` is
the version of the user's A/B variant, from a routing table cached in this process. Both keys
share a hash tag (``contracts.rediskeys``), so on Redis Cluster too it is one command to one
node. The table (the active version, the split, each variant's version, publish times: the
control keys, one slot) is re-read lazily, in one transaction (one round trip): the first
request after ``VERSION_REFRESH_SECONDS`` takes a non-blocking lock and pays for it; requests
arriving meanwhile keep the cached table instead of queueing behind it. Lazy beats a background
thread here: nothing to start after gunicorn forks, nothing to stop, and an idle worker costs
Redis nothing. Only a process that has no table yet waits for the lock. The cache is also
dropped as soon as a version's keys are gone (precompute's rollback deletes the version it
leaves), so that costs one request, not a whole interval. A pooled connection idle for
HEALTH_CHECK_SECONDS is PINGed before use. The clients (one Redis, Sentinel-managed, or Redis
Cluster, by REDIS_MODE) are made in ``service.redisclient``, through ``redisconn.clients``
like every role's; a cluster or Sentinel client finds a promoted replica after a failover by
itself, and until then requests fail over to the fallback like any Redis error.

Failures never reach Flask, and there is always an answer. On a Redis error or timeout, while
the breaker keeps a failing Redis out of the way, or when no version is active, the answer is
the last cold-start body this process read from Redis, else the list shipped with the image
(``FALLBACK_PATH``), which ``service.fallback`` checked at startup. Each such answer is counted
by cause and logged (rate-limited). The client has short timeouts and retries once only on a
connection error (a stale pooled socket after a Redis restart), never on a timeout.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from contracts import ab, rediskeys
from service import prom, redisclient
from service.breaker import Breaker
from service.fallback import FILE_VERSION, read_fallback
from service.settings import Settings

log = logging.getLogger(__name__)

Source = Literal["personal", "cold_start", "fallback"]
Cause = Literal["redis_error", "redis_skipped", "no_active_version", "version_missing", "bug"]

LOG_EVERY_SECONDS = 10.0  # while degraded, repeat the same reason at most this often
RECENT_VERSIONS = 100  # publish times read per refresh: precompute keeps two or three
_VERSION = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII: safe in a key and a header


@dataclass(frozen=True, slots=True)
class Answer:
    """A body to send as is, where it came from, and which A/B variant the user is in."""

    body: bytes
    version: str
    source: Source
    variant: str = ab.DEFAULT_VARIANT


@dataclass(frozen=True, slots=True)
class Routing:
    """One refresh's view of Redis: who is in which variant, and what each variant reads."""

    active: str | None = None
    split: ab.TrafficSplit = ab.EVERYONE_IN_CONTROL
    variant_versions: Mapping[str, str] = field(default_factory=dict)
    published: Mapping[str, float] = field(default_factory=dict)  # version -> unix time

    def version_for(self, variant: str) -> str | None:
        return self.variant_versions.get(variant, self.active)

    def served(self) -> dict[str, str]:
        """variant -> version, for every variant that gets users and has a version."""
        pairs = ((v, self.version_for(v)) for v in self.split.variants)
        return {variant: version for variant, version in pairs if version is not None}


NOTHING_READ = Routing()


def load_fallback(path: Path) -> Answer:
    """The shipped (or configured) list as an answer; raises ``FallbackError`` if unusable."""
    return Answer(read_fallback(path), FILE_VERSION, "fallback")


class RecommendationStore:
    """Thread-safe: one per worker process, shared by its threads. Each thread has its own
    Redis client holding one connection (``single_connection_client``): no pool lock and no
    pool check of the socket per request, which is about a third of redis-py's CPU cost per
    command here. gunicorn's threads live as long as the worker, so do their connections."""

    def __init__(
        self,
        connect: Callable[[], redisclient.Client],
        fallback: Answer,
        version_refresh_seconds: float = 1.0,
        breaker: Breaker | None = None,
    ) -> None:
        self._connect = connect
        self._local = threading.local()
        self._clients: list[redisclient.Client] = []  # every thread's client, for close()
        self._clients_lock = threading.Lock()
        self._shared: redisclient.Client | None = None  # a cluster client, every thread's
        self._refresh_seconds = version_refresh_seconds
        self._breaker = breaker or Breaker()
        self._routing = NOTHING_READ
        self._routing_expires = float("-inf")  # monotonic; -inf: never read, 0.0: stale now
        self._routing_lock = threading.Lock()
        self._refresh_attempts = 0
        self._forced_refresh_for: str | None = None  # the missing version that forced one
        self._file_answer = fallback
        self._last_default: Answer | None = None  # the newest cold-start list Redis gave us
        self._logged: tuple[str, float] = ("", float("-inf"))

    @classmethod
    def from_settings(cls, settings: Settings) -> RecommendationStore:
        def connect() -> redisclient.Client:
            return redisclient.open_thread_client(
                settings.redis_url, settings.redis_topology, settings.redis_timeout_seconds
            )

        return cls(
            connect,
            load_fallback(settings.fallback_path),
            settings.version_refresh_seconds,
            Breaker(settings.redis_breaker_failures, settings.redis_breaker_seconds),
        )

    def _client(self) -> redisclient.Client:
        """This thread's client; made (and connected) on the thread's first request. A
        connect that fails raises RedisError like any call, and the next request retries.
        A cluster client is shared by the worker's threads instead (it is thread-safe, with
        a pool per node): one slot map, so one failover costs one re-read of the map, not
        a first failed request on every thread that was idle meanwhile."""
        client: redisclient.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._shared
            if client is None:
                client = self._connect()
                with self._clients_lock:
                    self._clients.append(client)
                    if isinstance(client, RedisCluster):
                        self._shared = client
            self._local.client = client
        return client

    # --- the hot path -------------------------------------------------------------------

    def recommend(self, user_id: int) -> Answer:
        """Never raises: every failure turns into a fallback answer."""
        try:
            return self._lookup(user_id)
        except Exception as exc:  # a bug must still not cost availability
            log.exception("unexpected error reading recommendations")
            return self._fallback(user_id, "bug", f"unexpected error: {type(exc).__name__}")

    def _lookup(self, user_id: int) -> Answer:
        if not self._breaker.allow():
            return self._fallback(user_id, "redis_skipped", "redis failing, not asked")
        try:
            routing = self._current_routing()
            variant = routing.split.assign(user_id)
            version = routing.version_for(variant)
            if version is None:
                if self._breaker.success():
                    prom.BREAKER_OPEN.set(0)
                return self._fallback(
                    user_id, "no_active_version", f"{rediskeys.ACTIVE} unset or malformed"
                )
            user_body, default_body = self._mget(
                rediskeys.user(version, user_id), rediskeys.default(version, user_id)
            )
        except RedisError as exc:
            prom.REDIS_ERRORS.labels(type(exc).__name__).inc()
            if self._breaker.failure():
                prom.BREAKER_OPEN.set(1)
            return self._fallback(user_id, "redis_error", f"{type(exc).__name__}: {exc}")
        if self._breaker.success():
            prom.BREAKER_OPEN.set(0)
        if default_body:
            last = self._last_default
            if last is None or last.version != version or last.body != default_body:
                self._last_default = Answer(default_body, version, "fallback")
        if user_body:
            return Answer(user_body, version, "personal", variant)
        if default_body:
            prom.COLD_START.inc()
            return Answer(default_body, version, "cold_start", variant)
        # The version is gone (a rollback deletes the version it leaves at once), or ACTIVE
        # is broken: re-read the routing on the next request instead of after the interval;
        # once per missing version, so a variant pinned to a pruned version does not turn
        # every one of its requests into two round trips.
        if self._forced_refresh_for != version:
            self._forced_refresh_for = version
            self._routing_expires = min(self._routing_expires, 0.0)
        return self._fallback(user_id, "version_missing", f"version {version} has no lists")

    def _mget(self, *keys: str) -> list[bytes | None]:
        """MGET on this thread's redis-py connection, past the client's per-command layer
        (observability hooks, per-command checks, a lock for a client only this thread
        uses): about 26 us of the 60 us of CPU a ``Redis.mget`` costs here (BENCHMARKS.md).
        The connection still does the rest: socket timeouts, the idle health check,
        (re)connecting, hiredis parsing, disconnect on an error, and the client's Retry (one
        retry on a connection error). A cluster client is asked as it is: it routes the
        command to the keys' slot and follows failovers and slot moves."""
        client = self._client()
        if isinstance(client, RedisCluster):
            return cast("list[bytes | None]", client.mget(*keys))
        conn = client.connection
        assert conn is not None, "a single_connection_client holds its connection"

        def attempt() -> list[bytes | None]:
            conn.send_command("MGET", *keys)
            return conn.read_response()

        return conn.retry.call_with_retry(attempt, lambda _error: conn.disconnect())

    def _fallback(self, user_id: int, cause: Cause, reason: str) -> Answer:
        prom.FALLBACKS.labels(cause).inc()
        answer = self._last_default or self._file_answer
        reason = " ".join(reason.split())  # one line, whatever an exception said
        self._log(f"answering from fallback {answer.version} ({cause}): {reason}")
        try:
            variant = self._routing.split.assign(user_id)
        except Exception:  # the split is data from Redis; never let it cost the answer
            variant = ab.DEFAULT_VARIANT
        return Answer(answer.body, answer.version, "fallback", variant)

    # --- the routing table --------------------------------------------------------------

    def _current_routing(self) -> Routing:
        """The cached table; at most one caller per interval re-reads it from Redis."""
        if time.monotonic() < self._routing_expires:
            return self._routing
        never_read = self._routing_expires == float("-inf")
        attempts = self._refresh_attempts
        if not self._routing_lock.acquire(blocking=never_read):
            return self._routing  # someone else is refreshing: stale by a moment is fine
        try:
            if time.monotonic() < self._routing_expires:
                return self._routing  # refreshed while we waited for the lock
            if self._refresh_attempts != attempts:
                # Another refresh failed meanwhile; trying again in turn would stack timeouts.
                if never_read:
                    raise RedisConnectionError("reading the routing table just failed")
                return self._routing
            self._refresh_attempts += 1
            try:
                routing = self._read_routing()  # a RedisError leaves the cache expired
            except RedisError as exc:
                client = getattr(self._local, "client", None)  # never connect again here
                if client is not None:
                    redisclient.after_error(client, exc)
                raise
            self._switch(routing)
            self._routing_expires = time.monotonic() + self._refresh_seconds
            return routing
        finally:
            self._routing_lock.release()

    def _read_routing(self) -> Routing:
        # MULTI/EXEC: an experiment's split and its variants' versions change together
        # (experiments.store writes them in one transaction), so read them together too.
        with self._client().pipeline(transaction=True) as pipe:
            pipe.get(rediskeys.ACTIVE)
            pipe.hgetall(rediskeys.SPLIT)
            pipe.hgetall(rediskeys.VARIANT_VERSIONS)
            pipe.zrange(rediskeys.VERSIONS, -RECENT_VERSIONS, -1, withscores=True)
            raw_active, raw_split, raw_variants, raw_published = pipe.execute()
        try:
            split = ab.parse_split(raw_split)
        except ValueError as exc:
            self._log(f"ignoring {rediskeys.SPLIT} (everyone in {ab.DEFAULT_VARIANT}): {exc}")
            split = ab.EVERYONE_IN_CONTROL
        variant_versions = {}
        for name, raw in raw_variants.items():
            variant, version = name.decode("utf-8", "replace"), _parse_version(raw)
            if ab.valid_variant(variant) and version is not None:
                variant_versions[variant] = version
        published = {v.decode("ascii", "replace"): score for v, score in raw_published}
        return Routing(_parse_version(raw_active), split, variant_versions, published)

    def _switch(self, routing: Routing) -> None:
        """Log and export a change of what is served; no-op when nothing changed."""
        old, new = self._routing.served(), routing.served()
        self._routing = routing
        if old != new:
            self._forced_refresh_for = None
            log.info("serving versions by variant: %s -> %s", old or None, new or None)
            for variant, version in old.items():
                if new.get(variant) != version:
                    prom.MODEL_VERSION.labels(variant, version).set(0)
            for variant, version in new.items():
                prom.MODEL_VERSION.labels(variant, version).set(1)
        self.export_age()

    def export_age(self) -> None:
        """Set the publish time and age gauges of what this worker serves; called on each
        refresh and by ``/metrics`` just before it renders, so the age is current."""
        now = time.time()
        routing = self._routing
        prom.BREAKER_OPEN.set(1 if self._breaker.is_open else 0)
        for variant, version in routing.served().items():
            published = routing.published.get(version)
            if published is not None:
                prom.PUBLISHED.labels(variant).set(published)
                prom.AGE.labels(variant).set(max(0.0, now - published))

    # --- readiness and lifecycle --------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        """(ready, one line why): Redis answers and ``rec:{ctl}:active`` names a version. Asks
        Redis directly, past the breaker and the cache: this is the probe of Redis itself."""
        try:
            version = _parse_version(self._client().get(rediskeys.ACTIVE))
        except RedisError as exc:
            prom.REDIS_ERRORS.labels(type(exc).__name__).inc()
            return False, " ".join(f"redis unreachable: {type(exc).__name__}: {exc}".split())
        if version is None:
            return False, f"no active version: {rediskeys.ACTIVE} unset or malformed"
        return True, f"ready: active version {version}"

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
            self._shared = None
        for client in clients:
            client.close()  # and its pool: every mode opens one it owns

    def _log(self, line: str) -> None:
        """One line per new reason, then at most every LOG_EVERY_SECONDS, so an outage at
        hundreds of requests per second does not turn into as many log lines."""
        now = time.monotonic()
        last_line, last_time = self._logged
        if line != last_line or now - last_time >= LOG_EVERY_SECONDS:
            self._logged = (line, now)
            log.warning("%s", line)


def _parse_version(raw: bytes | str | None) -> str | None:
    """Our clients do not decode responses (bytes); a decoded one (str) is taken as is."""
    if raw is None:
        return None
    version = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    if not _VERSION.fullmatch(version):
        log.error("ignoring malformed version value %r", raw[:200])
        return None
    return version
