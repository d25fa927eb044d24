"""Stopping everything a devstack command started, however it is asked to stop.

``make demo``, ``make airflow`` and ``make experiment-demo`` start servers, services and
steps as child processes, each in a session of its own (``spawn``): a terminal's Ctrl-C or
hang-up, or a supervisor's SIGTERM, reaches the demo only, and the demo stops its children
in order, each with SIGTERM first (gunicorn drains, the consumer commits) and SIGKILL for
what is still there after a grace period, the child's whole process group included.

``install()`` makes SIGINT, SIGTERM and SIGHUP alike raise ``Stopped`` (a
``KeyboardInterrupt``) in the main thread, so the ``finally`` blocks that stop the children
run whichever signal came. Only the first signal counts: the three are ignored from then
on, so a second Ctrl-C cannot cut the cleanup short. The process then exits with the
shell's code for that signal (``exit_code``: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_TIMEOUT = 15.0  # seconds a child gets after SIGTERM (gunicorn's graceful timeout is 10)
STRAGGLER_TIMEOUT = 5.0  # then for what is left of its process group


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _stop(signum: int, _frame: Any) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


def install() -> None:
    """From now on SIGINT, SIGTERM and SIGHUP raise ``Stopped`` in the main thread."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop)


def exit_code(error: KeyboardInterrupt) -> int:
    """The exit status for an interrupted run: the signal's (plain Ctrl-C: 130)."""
    return error.exit_code if isinstance(error, Stopped) else 128 + signal.SIGINT


def run_main(main: Callable[[], int]) -> None:
    """``sys.exit(main())`` with the stop signals installed; a stop exits with its code."""
    install()
    try:
        code = main()
    except KeyboardInterrupt as error:
        code = exit_code(error)
    sys.exit(code)


def say(message: str) -> None:
    """Print, unless the terminal is gone (after a hang-up a write fails with EIO): the
    cleanup that follows must not be cut short by a message nobody can read."""
    with contextlib.suppress(OSError, ValueError):
        print(message, flush=True)


def spawn(
    argv: list[str],
    env: Mapping[str, str],
    *,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
) -> subprocess.Popen:
    """A child in a session (and process group) of its own, in the repository, no stdin.
    ``stdout``/``stderr`` None: this process's own (the terminal)."""
    return subprocess.Popen(
        argv,
        env=dict(env),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def stop_process(
    process: subprocess.Popen | None,
    sig: int = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT,
) -> None:
    """``sig`` to a child started by ``spawn`` (or ``Server``), SIGKILL if it is still there
    after ``timeout``; then SIGTERM and SIGKILL to whatever is left of its process group (a
    worker its master left behind). Idempotent.

    The child is reaped only after its group is cleared: until then its PID, which is the
    group's ID, cannot be given to another process, so no one else's group is signalled."""
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, sig)
    if not _exited(process, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        _exited(process, None)
    kill_group(process.pid)
    process.wait()


def running(process: subprocess.Popen | None) -> bool:
    """Whether the child is still running; unlike ``poll()`` this does not reap it."""
    return process is not None and process.returncode is None and not _exited(process, 0)


def _exited(process: subprocess.Popen, timeout: float | None) -> bool:
    """Wait up to ``timeout`` (None: for ever) for the child to exit, without reaping it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        flags = os.WEXITED | os.WNOWAIT | (0 if deadline is None else os.WNOHANG)
        if os.waitid(os.P_PID, process.pid, flags) is not None:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of group ``pgid``, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def kill_group(pgid: int, timeout: float = STRAGGLER_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL after ``timeout``, to every live process left in group ``pgid``
    (whose leader, the caller's child, has exited but is not reaped yet)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_members(pgid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + timeout
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)


def run_step(
    argv: list[str], env: Mapping[str, str], *, stdout: IO[Any] | int | None = None
) -> int:
    """Run a step to its end and return its exit status; if this process is stopped
    meanwhile, the step is stopped too (SIGTERM, then SIGKILL) before the stop goes on."""
    process = spawn(argv, env, stdout=stdout, stderr=None if stdout is None else subprocess.STDOUT)
    try:
        _exited(process, None)
    except BaseException:
        stop_process(process)
        raise
    kill_group(process.pid)  # anything the step left running
    return process.wait()
