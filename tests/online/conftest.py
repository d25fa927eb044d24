"""Fixtures of the online evaluation's tests, on real parts: request-log lines written by the
service's own writer (``service_line``), watches read back from a real journal segment
(``journal_watches``), recommendation tables (``recs_frame``), and ``job``: the job's data
directory (the test's tmp_path) with what goes into it, stream lines as journal segments, a
request log, a simulated world's stream with its request log, and the job's settings for it.
``python -m`` runs are the root conftest's ``run_module``.

Times are minutes after T0 = 2025-03-01 12:00 (naive UTC), ``at(minutes)``; lists default to
(A, B, C) = ("alpha+2001", "beta+2002", "gamma+2003"); the journal's topic is "movielog".
The test modules that name these values write them out themselves. The pure helpers'
fixtures are session-scoped (hypothesis tests can use them); ``job`` is the test's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from contracts import ab
from ingest.events import Event, Recommendation, Watch, format_event, parse_line
from ingest.journal import Journal, SegmentBuilder
from online import frames
from online.settings import Settings
from online.stream import read_journal
from service.lookup import Answer
from service.requestlog import RequestLog
from simulator.traffic import World

TOPIC = "movielog"
T0 = datetime(2025, 3, 1, 12, 0, 0)
LIST = ("alpha+2001", "beta+2002", "gamma+2003")


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _write_segment(root: Path, lines: Iterable[bytes], first_offset: int = 0) -> int:
    """Contract lines -> one journal segment, through the grammar as the consumer does it;
    returns the next offset."""
    builder = SegmentBuilder(0)
    offset = first_offset
    for offset, line in enumerate(lines, first_offset):
        builder.add(offset, parse_line(line), line)
    Journal(root, TOPIC).write(builder)
    return offset + 1


def _event_lines(events: Iterable[Event]) -> list[bytes]:
    return [format_event(e).encode() for e in events]


def _journal_watches(root: Path, rows: Iterable[tuple[float, int, str, int]]) -> pd.DataFrame:
    """Watches (minutes after T0, user, movie, minute) read back from a real journal."""
    _write_segment(root, _event_lines(Watch(_at(t), u, m, n) for t, u, m, n in rows))
    return read_journal(Journal(root, TOPIC), {}).watches


def _recs_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Recommendations from short dicts: t (minutes after T0), user, and overrides."""
    full = [
        {
            "time": _at(r["t"]),
            "user": r.get("user", 1),
            "status": r.get("status", 200),
            "variant": r.get("variant", "control"),
            "version": r.get("version", "v1"),
            "source": "personal",
            "latency_ms": r.get("latency_ms", 1.0),
            "movies": r.get("movies", LIST if r.get("status", 200) == 200 else ()),
        }
        for r in rows
    ]
    return frames.recommendations(
        **{c: [r[c] for r in full] for c in frames.RECOMMENDATION_COLUMNS}
    )


def _service_line(
    user: int | None,
    status: int,
    when: datetime,
    movies: tuple[str, ...] = LIST,
    *,
    variant: str = "control",
    version: str = "v1",
    latency_ms: float = 2.5,
) -> bytes:
    """A request-log line exactly as the service writes it (``when`` is naive UTC)."""
    answer = (
        None if user is None else Answer(",".join(movies).encode(), version, "personal", variant)
    )
    now = when.replace(tzinfo=UTC).timestamp()
    return RequestLog().format(user, status, latency_ms / 1000, answer, now).encode()


def _simulated(days: float = 4, seed: int = 5) -> tuple[list[bytes], list[tuple[datetime, bytes]]]:
    """A simulated world's stream, and the service's request log for its recommendation
    lines: users split 50/50 between two variants served by two versions, errors logged
    without a list, plus a rejected user ID and a stray line now and then."""
    lines = [line for _, line in World.build(150, 120, seed).generate(days, noise=0.005)]
    split = ab.parse_split({"control": "1", "treatment": "1"})
    log: list[tuple[datetime, bytes]] = []
    for line in lines:
        event = parse_line(line)
        if not isinstance(event, Recommendation):
            continue
        variant = split.assign(event.user_id)
        served = _service_line(
            event.user_id,
            event.status,
            event.time,
            event.movies,
            variant=variant,
            version=f"v-{variant}",
            latency_ms=event.latency_ms / 3,
        )
        log.append((event.time, served))
        if event.user_id % 5 == 0:
            log.append((event.time, _service_line(None, 400, event.time)))
        if event.user_id % 7 == 0:
            log.append((event.time, b"[INFO] worker booted"))
    return lines, log


def _job_settings(data_dir: Path, **overrides) -> Settings:
    return Settings(
        data_dir=data_dir, request_log_paths=(str(data_dir / "requests.log"),), **overrides
    )


def _append_log(data_dir: Path, entries: list[tuple[datetime, bytes]]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "requests.log").open("ab") as handle:
        handle.writelines(line + b"\n" for _, line in entries)


@dataclass(frozen=True)
class JobData:
    """The job's data directory ``data_dir`` and what the tests put into it: stream lines as a
    journal segment, request-log lines, a simulated world's both; the job's settings for it."""

    data_dir: Path

    at = staticmethod(_at)
    service_line = staticmethod(_service_line)

    def on(self, data_dir: Path) -> JobData:
        """The same for another data directory."""
        return JobData(data_dir)

    def stream(self, lines: Iterable[bytes], first_offset: int = 0) -> int:
        """Contract lines -> one journal segment (topic "movielog") in this directory, through
        the grammar as the consumer writes it; returns the next offset."""
        return _write_segment(self.data_dir, lines, first_offset)

    def events(self, events: Iterable[Event], first_offset: int = 0) -> int:
        """The events' contract lines as a journal segment; returns the next offset."""
        return self.stream(_event_lines(events), first_offset)

    def log(self, entries: list[tuple[datetime, bytes]]) -> None:
        """Lines appended to the request log ``requests.log``."""
        _append_log(self.data_dir, entries)

    def simulate(
        self, days: float = 4, seed: int = 5
    ) -> tuple[list[bytes], list[tuple[datetime, bytes]]]:
        """A simulated world's stream (a journal segment) and the service's request log for
        its recommendations, as (time, line), written here; returns both. Users are split
        50/50 between variants control and treatment, served by versions v-control and
        v-treatment; errors are logged without a list, plus a rejected user ID and a stray
        line now and then."""
        lines, log = _simulated(days, seed)
        self.stream(lines)
        self.log(log)
        return lines, log

    def settings(self, **overrides: object) -> Settings:
        """The job's settings for this directory, reading its ``requests.log``."""
        return _job_settings(self.data_dir, **overrides)


@pytest.fixture
def job(tmp_path: Path) -> JobData:
    """``JobData(tmp_path)``: ``job.simulate(days, seed)``, ``job.stream(lines)``,
    ``job.events(events)``, ``job.log(entries)``, ``job.settings(**overrides)``, ``job.at``,
    ``job.service_line``, ``job.on(other_dir)``."""
    return JobData(tmp_path)


@pytest.fixture(scope="session")
def at() -> Callable[[float], datetime]:
    """``at(minutes)``: T0 plus that many minutes."""
    return _at


@pytest.fixture(scope="session")
def service_line() -> Callable[..., bytes]:
    """``service_line(user, status, when, movies=LIST, *, variant, version, latency_ms)``: a
    request-log line exactly as the service's ``RequestLog`` writes it."""
    return _service_line


@pytest.fixture(scope="session")
def journal_watches() -> Callable[..., pd.DataFrame]:
    """``journal_watches(root, [(minutes after T0, user, movie, minute), ...])``: the watches
    written to a journal under ``root`` and read back by ``online.stream``."""
    return _journal_watches


@pytest.fixture(scope="session")
def recs_frame() -> Callable[[Iterable[dict]], pd.DataFrame]:
    """A recommendations table from short dicts: t (minutes after T0), user (default 1),
    status, variant, version, latency_ms, movies (default LIST for a 200, else none)."""
    return _recs_frame
