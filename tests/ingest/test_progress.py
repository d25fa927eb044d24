"""Progress of long work (``ingest.progress``): a bar on a terminal, plain periodic log lines
anywhere else, and never a byte on stdout, where the commands print their JSON.

The last test runs a real long step, ``python -m ingest consume`` over a backlog, once with
stderr on a pseudo-terminal (as when run by hand) and once on a pipe (as under Airflow).
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import uuid
from pathlib import Path

import pytest

from ingest.progress import Progress
from simulator.traffic import World, produce

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
log = logging.getLogger("test.progress")


def terminal(columns: int = 120) -> tuple[int, int]:
    """A pseudo-terminal (master, slave) of a sensible width."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    return master, slave


def read_all(fd: int, into: bytearray) -> None:
    """Everything written to a pty's slave, read from its master until all slaves close."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: no slave open any more
            return
        if not chunk:
            return
        into.extend(chunk)


def test_on_a_terminal_a_bar_and_nothing_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    master, slave = terminal()
    shown = bytearray()
    reader = threading.Thread(target=read_all, args=(master, shown))
    reader.start()
    with (
        os.fdopen(slave, "w") as stream,
        Progress("scoring", 400, "users", log=log, stream=stream) as p,
    ):
        assert p.terminal
        for _ in p.track(range(4), size=lambda _: 100):
            pass
    reader.join(timeout=10)
    os.close(master)
    text = ANSI.sub("", shown.decode(errors="replace"))
    assert "scoring" in text
    assert "400/400" in text
    assert "100%" in text
    assert capsys.readouterr().out == ""


def test_elsewhere_periodic_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    stream = io.StringIO()
    with Progress("training", 3, "epochs", log=log, stream=stream, every=0) as progress:
        assert not progress.terminal
        for epoch in range(3):
            progress.advance(note=f"loss {1 / (epoch + 1):.2f}")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # one per update (every=0), and the last one
    assert all(line.startswith("training: ") and "epochs/s" in line for line in lines)
    assert "1 of 3 epochs (33%), loss 1.00" in lines[0]
    assert "3 of 3 epochs (100%)" in lines[-1]
    assert "done in" in lines[-1]
    assert stream.getvalue() == ""  # no bar where there is no terminal


def test_resumed_work_counts_from_where_it_resumed_and_idle_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A consumer resuming at 1,000 of 2,000 journaled events: shown as done, not as speed;
    once caught up and idle, no more lines."""
    caplog.set_level(logging.INFO, logger=log.name)
    progress = Progress("consume", unit="events", log=log, stream=io.StringIO(), every=0)
    progress.rebase(1000, 2000)
    progress.update(1500)
    progress.update(1500)  # nothing new
    progress.update(1500)
    progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("consume: 1,500 of 2,000 events (75%), ")
    assert "about" in lines[0]  # time left
    assert lines[1].startswith("consume: 1,500 of 2,000 events (75%), ")
    assert "done in" in lines[1]


def test_short_work_elsewhere_stays_quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    with Progress("quick", 10, log=log, stream=io.StringIO()) as progress:
        progress.advance(10)
    assert caplog.records == []


def test_consuming_a_backlog_shows_progress_and_keeps_stdout_for_json(
    bootstrap: str, topic: str, tmp_path: Path
) -> None:
    lines = [line for _, line in World.build(200, 100, seed=3).generate(days=5)]
    assert produce(lines, bootstrap, topic) == len(lines)

    def consume(data_dir: Path, stderr: int) -> tuple[subprocess.Popen, dict]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "RECSYS_DATA_DIR": str(data_dir),
            "KAFKA_BOOTSTRAP": bootstrap,
            "KAFKA_TOPIC": topic,
            "KAFKA_GROUP": f"progress-{uuid.uuid4().hex[:8]}",
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "INGEST_METRICS_PORT": "0",
            "INGEST_BATCH_SIZE": "2000",
            "INGEST_BATCH_SECONDS": "1",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest", "consume", "--idle", "1"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        return process, env

    # By hand: stderr is a terminal.
    master, slave = terminal()
    process, _ = consume(tmp_path / "tty", slave)
    os.close(slave)
    shown = bytearray()
    reader = threading.Thread(target=read_all, args=(master, shown))
    reader.start()
    stdout, _ = process.communicate(timeout=90)
    reader.join(timeout=10)
    os.close(master)
    assert process.returncode == 0
    assert len(stdout.splitlines()) == 1
    assert json.loads(stdout)["consumed"] == len(lines)
    text = ANSI.sub("", shown.decode(errors="replace"))
    assert f"consume {topic}" in text
    assert f"{len(lines)}/{len(lines)}" in text

    # Under a scheduler: stderr is a pipe, so log lines, no bar.
    process, _ = consume(tmp_path / "pipe", subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 0
    assert json.loads(stdout)["consumed"] == len(lines)
    assert "batch durable" in stderr.decode()
    assert "\x1b[" not in stderr.decode() and "━" not in stderr.decode()
