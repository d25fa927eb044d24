"""Progress of long work: a live bar on a terminal, plain log lines otherwise.

Precomputing a million users, training for dozens of epochs and consuming a large backlog
take minutes; run by hand they should say how far they are. Where stderr is a terminal, a
``rich`` progress bar on stderr does (count, share, rate, time left). Anywhere else (an
Airflow task log, a pipe, a file) the bar would be noise, so a plain log line says the same
every ``LOG_EVERY_SECONDS`` while it advances, and a last one when the work ends, if it ran
that long at all: short work, and a consumer with nothing to consume, stay as quiet as
before. stdout is never touched (the commands print their JSON results there), and rich is
told not to redirect it.

It lives in ``ingest``, the lowest package of the pipeline, so that training and precompute
use the same one.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO, TypeVar

LOG_EVERY_SECONDS = 30.0
T = TypeVar("T")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class Progress:
    """``what`` advancing towards ``total`` (None: unknown, or growing) ``unit``s.

    ``advance(n)`` or ``update(done, total)`` as the work goes, ``track(iterable)`` to count
    what an iterable yields, ``close()`` (or the end of a ``with`` block) when it is done.
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        unit: str = "",
        *,
        log: logging.Logger,
        every: float = LOG_EVERY_SECONDS,
        stream: TextIO | None = None,
    ) -> None:
        self.what, self.total, self.unit, self.log, self.every = what, total, unit, log, every
        self.done = 0
        self.note = ""
        self._started = time.monotonic()
        self._base = 0  # done before this work began (``rebase``): rates count from it
        self._mark = (self._started, 0)  # (when, done) of the last log line
        self._logged_any = False
        stream = sys.stderr if stream is None else stream
        self._bar: Any = None
        if _is_terminal(stream):
            self._bar = _bar(stream, unit)
            self._task = self._bar.add_task(what, total=total)
            self._bar.start()

    @property
    def terminal(self) -> bool:
        """Whether a bar is shown (else log lines are written)."""
        return self._bar is not None

    def rebase(self, done: int, total: int | None = None) -> None:
        """Where the work starts, when some was done before (a consumer resuming where its
        journal ends): shown as done, not counted in the rate."""
        self.done = self._base = done
        self.total = total if total is not None else self.total
        self._mark = (time.monotonic(), done)
        if self._bar is not None:
            self._bar.reset(self._task, completed=done, total=self.total)

    def advance(self, n: int = 1, note: str = "") -> None:
        self.update(self.done + n, note=note)

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        self.done = done
        self.note = note or self.note
        if total is not None:
            self.total = total
        if self._bar is not None:
            description = f"{self.what} ({self.note})" if self.note else self.what
            self._bar.update(self._task, completed=done, total=self.total, description=description)
            return
        now = time.monotonic()
        since, then = self._mark
        if now - since >= self.every and done != then:  # nothing new: nothing to say
            self.log.info("%s", self.line((done - then) / (now - since)))
            self._mark = (now, done)
            self._logged_any = True

    def track(self, items: Iterable[T], size: Callable[[T], int] = lambda _: 1) -> Iterator[T]:
        """``items`` as they come, each counted (``size(item)`` units) once the consumer
        asks for the next one, i.e. once it has been dealt with."""
        for item in items:
            yield item
            self.advance(size(item))

    def line(self, rate: float, final: bool = False) -> str:
        """``what: 250,000 of 1,000,000 users (25%), 41,000 users/s, about 18 s left``: the rate
        over the last interval, or with ``final`` over the whole work."""
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            head = f"{self.done:,} of {self.total:,}{unit} ({self.done / self.total:.0%})"
        else:
            head = f"{self.done:,}{unit}"
        parts = [f"{self.what}: {head}"]
        if self.note:
            parts.append(self.note)
        parts.append(f"{rate:,.1f}{unit}/s" if rate < 10 else f"{rate:,.0f}{unit}/s")
        if final:
            parts.append(f"done in {time.monotonic() - self._started:,.1f} s")
        elif self.total and rate > 0 and self.done < self.total:
            parts.append(f"about {(self.total - self.done) / rate:,.0f} s left")
        return ", ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            return
        elapsed = time.monotonic() - self._started
        if self._logged_any or elapsed >= self.every:
            rate = (self.done - self._base) / elapsed if elapsed > 0 else 0.0
            self.log.info("%s", self.line(rate, final=True))
            self._logged_any = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _bar(stream: TextIO, unit: str) -> Any:
    from rich import progress as rich
    from rich.console import Console
    from rich.table import Column

    # The description shrinks first on a narrow terminal; the counts never do.
    description = Column(ratio=1, no_wrap=True, overflow="ellipsis")
    return rich.Progress(
        rich.TextColumn("{task.description}", table_column=description),
        rich.BarColumn(bar_width=20),
        rich.MofNCompleteColumn(),
        rich.TextColumn(unit),
        rich.TaskProgressColumn(),
        rich.TimeRemainingColumn(),
        console=Console(file=stream),
        redirect_stdout=False,  # stdout carries the command's JSON: never through rich
        redirect_stderr=False,
    )
