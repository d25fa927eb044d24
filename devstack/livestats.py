"""The demo's live line: what the service answered lately, read from its request log.

The service writes one JSON line per ``/recommend`` request (``contracts.requestrecord``); in
the demo those go to a file, not the terminal. Every few seconds ``LiveLine`` reads what was
added to it and shows one compact line: requests so far, the rate, the p99 latency and the
share of personal answers over the last interval. On a terminal the line is rewritten in
place; otherwise (a pipe, a log file) a new line is printed, and only when there was traffic.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from contracts.requestrecord import FIELD_LATENCY_MS, FIELD_SOURCE, FIELD_STATUS

PERSONAL = "personal"


@dataclass
class Window:
    """The requests of one interval."""

    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    answered: int = 0  # status 200
    personal: int = 0  # status 200 from the user's own list

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def p99_ms(self) -> float | None:
        """Nearest-rank 99th percentile of the in-app latency."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]

    @property
    def personal_share(self) -> float | None:
        return self.personal / self.answered if self.answered else None

    def add(self, raw: bytes) -> None:
        try:
            record = json.loads(raw)
            latency = float(record[FIELD_LATENCY_MS])
        except (ValueError, KeyError, TypeError):
            return  # not a record line: nothing to count
        self.latencies_ms.append(latency)
        if record.get(FIELD_STATUS) == 200:
            self.answered += 1
            self.personal += record.get(FIELD_SOURCE) == PERSONAL


class RequestLogTail:
    """Reads the lines appended to a request log since the last read (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read(self, seconds: float) -> Window:
        window = Window(seconds)
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return window
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            window.add(line)
        return window


def summary(total: int, window: Window) -> str:
    """``12,345 requests  420/s  p99 1.8 ms  personal 83%`` (the last two over the window)."""
    rate = window.requests / window.seconds if window.seconds > 0 else 0.0
    p99 = window.p99_ms
    share = window.personal_share
    parts = [
        f"{total:,} requests",
        f"{rate:,.0f}/s",
        "p99 -" if p99 is None else f"p99 {p99:.1f} ms",
        "personal -" if share is None else f"personal {share:.0%}",
    ]
    return "  ".join(parts)


class LiveLine:
    """Shows ``summary`` of a request log every ``every`` seconds on ``out``."""

    def __init__(self, path: Path, every: float = 5.0, out: TextIO | None = None) -> None:
        self.tail = RequestLogTail(path)
        self.every = every
        self.out = out or sys.stdout
        self.total = 0
        self._last = time.monotonic()
        self._shown = False
        try:
            self.terminal = self.out.isatty()
        except ValueError:
            self.terminal = False

    def tick(self) -> None:
        """Read what was logged since the last tick and show it."""
        now = time.monotonic()
        window = self.tail.read(now - self._last)
        self._last = now
        self.total += window.requests
        line = f"    live: {summary(self.total, window)}"
        if self.terminal:
            self.out.write(f"\r\x1b[K{line}")
            self._shown = True
        elif window.requests:
            self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        """End a line rewritten in place, so what is printed next starts on its own line
        (unless the terminal is gone: nothing to end then)."""
        if self._shown:
            self._shown = False
            with contextlib.suppress(OSError, ValueError):
                self.out.write("\n")
                self.out.flush()
