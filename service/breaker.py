"""A circuit breaker for the worker's Redis calls.

A Redis that refuses connections fails in microseconds, but one that hangs (a network
partition, a stuck server) costs every request the full timeout; with a handful of threads
per worker that caps a replica at a few hundred requests per second and queues the rest. So
after ``failures`` consecutive errors the worker stops asking for ``open_seconds`` and answers
from its fallback list at full speed. When that time is up exactly one request probes Redis
(the others keep the fallback for another period): success closes the breaker, failure
re-opens it. Recovery after an outage therefore takes at most about ``open_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Breaker:
    """Thread-safe. The closed state costs one attribute read per call."""

    def __init__(
        self,
        failures: int = 3,
        open_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failures
        self._open_seconds = open_seconds
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None  # None: closed
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def allow(self) -> bool:
        """May this call go to Redis? While open: no, except one probe per period."""
        until = self._open_until
        if until is None:
            return True
        now = self._clock()
        if now < until:
            return False
        with self._lock:
            if self._open_until is None:
                return True
            if now < self._open_until:
                return False  # another caller took the probe
            self._open_until = now + self._open_seconds  # this caller probes; re-armed meanwhile
            return True

    def success(self) -> bool:
        """Record a call that worked; True if that closed an open breaker."""
        if self._failures == 0 and self._open_until is None:
            return False
        with self._lock:
            was_open = self._open_until is not None
            if was_open:
                log.warning("redis answers again: using it")
            self._failures = 0
            self._open_until = None
            return was_open

    def failure(self) -> bool:
        """Record a failed call; True if the breaker is open now."""
        with self._lock:
            self._failures += 1
            if self._failures < self._threshold:
                return False
            if self._open_until is None:
                log.warning(
                    "redis failed %d times in a row: answering from fallback, probing every %.1f s",
                    self._failures,
                    self._open_seconds,
                )
            self._open_until = self._clock() + self._open_seconds
            return True
