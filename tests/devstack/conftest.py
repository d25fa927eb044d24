"""Fixtures of the devstack tests: the demos as a newcomer runs them (``launch``, ``demo``:
``python -m devstack.<name>`` in a session of its own, its terminal output in a file), what
they started (``Running.tree``, ``survivors``, ``listening_ports``, ``port_free``), and Debian
tools installed the way the Makefile installs them (``debian_tool``)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devstack.airflow import QUICK_ENV
from devstack.servers import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parents[2]
# A world that publishes in about 30 s: too small for the gate's production margin, so the
# margin is relaxed as for Airflow's quick runs (devstack.airflow.QUICK_ENV).
QUICK_DEMO = ["--users", "200", "--movies", "100", "--days", "5"]
START_TIMEOUT = 120.0  # seconds until the demo serves; about 35 on an idle 2-core machine


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state first), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _process_tree(root: int) -> dict[int, str]:
    """``root`` and every live descendant (new sessions included: parentage is followed),
    each with its start time, so a PID reused later is not mistaken for it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(int(stat.parent.name))
        if fields and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        fields = _stat(pid)
        if fields is None or fields[0] == "Z":
            continue
        tree[pid] = fields[19]
        todo.extend(children.get(pid, []))
    return tree


def _survivors(tree: dict[int, str], mentioning: str | None = None) -> dict[int, str]:
    """The processes of ``tree`` still running (same PID and start time, not a zombie), and
    with ``mentioning`` any process whose command line or environment contains it (a data
    directory: what a command started after ``tree`` was taken)."""
    alive = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        pid = int(stat.parent.name)
        fields = _stat(pid)
        if fields is None or fields[0] == "Z" or pid == os.getpid():
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ours = tree.get(pid) == fields[19]
        if ours or (mentioning is not None and (mentioning in command or mentioning in environ)):
            alive[pid] = command
    return alive


def _listening_ports(pids: set[int]) -> set[int]:
    """TCP ports on which any of ``pids`` listens (its sockets, matched in /proc/net)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes.update(link[8:-1] for link in links if link.startswith("socket:["))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((LOOPBACK, port)) != 0


@dataclass
class Running:
    """A running devstack command (``python -m devstack.<name>``); ``output`` is what its
    terminal would show."""

    process: subprocess.Popen
    output_path: Path
    data_dir: Path
    port: int  # the service's (or Airflow's) port
    seen: dict[int, str] = field(default_factory=dict)  # every process tree() found

    def tree(self) -> dict[int, str]:
        """``_process_tree`` of the command now (also kept, for the fixture's cleanup)."""
        tree = _process_tree(self.process.pid)
        self.seen.update(tree)
        return tree

    @property
    def base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.output(), re.M)
            if found:
                return found
            if self.process.poll() is not None:
                pytest.fail(f"it exited ({self.process.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} in {timeout:.0f}s:\n{self.output()}")
            time.sleep(0.2)

    def signal(self, sig: int, *, group: bool) -> None:
        """``sig`` to the command alone (a supervisor, ``kill``) or to its whole process
        group (a terminal's Ctrl-C or hang-up)."""
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """``launch(module, *args, ready=pattern)``: ``python -m devstack.<module> *args
    --port P --data-dir D`` (free port, fresh directory) in a session of its own, as from a
    terminal, with QUICK_ENV's relaxed gate; returns once ``ready`` is in its output. Whatever
    it started is killed after the test if the test did not stop it."""
    started: list[Running] = []

    def start(module: str, *args: str, ready: str, timeout: float = START_TIMEOUT) -> Running:
        port = free_port()
        data_dir = tmp_path / module
        output = tmp_path / f"{module}.out"
        argv = [sys.executable, "-m", f"devstack.{module}", *args]
        argv += ["--port", str(port), "--data-dir", str(data_dir)]
        with output.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**os.environ, **QUICK_ENV, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        handle = Running(process, output, data_dir, port)
        started.append(handle)
        handle.wait_for_output(ready, timeout)
        handle.tree()
        return handle

    yield start
    for handle in started:
        if handle.process.poll() is None:
            handle.tree()
            os.killpg(handle.process.pid, signal.SIGKILL)
            handle.process.wait()
        for pid in _survivors(handle.seen, str(handle.data_dir)):
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(pid) != os.getpgrp():
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def demo(launch: Callable[..., Running]) -> Callable[..., Running]:
    """``demo(*args)``: ``make demo`` on a small world, serving (``try: curl ...`` printed),
    its live line refreshed every second."""

    def start(*args: str) -> Running:
        return launch("demo", *QUICK_DEMO, "--live-every", "1", *args, ready=r"^\s+try:\s+curl ")

    return start


@pytest.fixture(scope="session")
def survivors() -> Callable[..., dict[int, str]]:
    """``survivors(tree, mentioning=None)``: the processes of a ``process_tree`` still
    running, and any mentioning ``mentioning`` in its command line or environment ->
    command line."""
    return _survivors


@pytest.fixture(scope="session")
def listening_ports() -> Callable[[set[int]], set[int]]:
    """``listening_ports(pids)``: the TCP ports those processes listen on."""
    return _listening_ports


@pytest.fixture(scope="session")
def port_free() -> Callable[[int], bool]:
    """``port_free(port)``: nothing accepts connections on LOOPBACK:port."""
    return _port_free


@pytest.fixture(scope="session")
def debian_tool() -> Callable[[str, str], str]:
    """``debian_tool(command, package)``: the command's path, installing the Debian package
    first if it is missing, exactly as the Makefile does (scripts/ci-deps.sh)."""

    def ensure(command: str, package: str) -> str:
        subprocess.run([str(ROOT / "scripts" / "ci-deps.sh"), f"{command}={package}"], check=True)
        found = subprocess.run(
            ["sh", "-c", f"command -v {command}"], check=False, capture_output=True
        )
        assert found.returncode == 0, f"{command} still missing after installing {package}"
        return found.stdout.decode().strip()

    return ensure
