"""Where things live, for every process: the variables several packages read.

Each is defined here once, with its default, as a ``contracts.env.Var``; a package's own
settings module declares a field with one of them (``redis_url: str = REDIS_URL.field()``),
so it never defines the default itself, and keeps only its own knobs.

| variable                    | default                  | read by                          |
|-----------------------------|--------------------------|----------------------------------|
| RECSYS_DATA_DIR             | ./var                    | ingest, training, precompute,    |
|                             |                          | online, experiments              |
| SNAPSHOT_URI                | (the data dir)           | snapshots: a path or             |
|                             |                          | s3://bucket/prefix               |
| REDIS_URL                   | redis://127.0.0.1:6379/0 | precompute, service, experiments |
| KAFKA_BOOTSTRAP             | 127.0.0.1:9092           | ingest, simulators               |
| KAFKA_TOPIC                 | movielog                 | ingest, online, simulators       |
| REQUEST_LOG_KAFKA_BOOTSTRAP | (unset)                  | service (writes), online (reads) |
| REQUEST_LOG_KAFKA_TOPIC     | recsys-requests          | service (writes), online (reads) |
| REDIS_MODE                  | single                   | precompute, service, experiments:|
|                             |                          | single, cluster or sentinel      |
| REDIS_CLUSTER_NODES         | (unset)                  | cluster: startup nodes besides   |
|                             |                          | REDIS_URL's (host:port,...)      |
| REDIS_SENTINELS             | (unset)                  | sentinel: the sentinels          |
|                             |                          | (host:port,...), required there  |
| REDIS_SENTINEL_MASTER       | recsys                   | sentinel: the monitored name     |

``RedisTopology`` (the last four) says how REDIS_URL is read: ``single``, the one Redis;
``cluster``, any node of a Redis Cluster (the others are discovered; list more startup nodes
in REDIS_CLUSTER_NODES so a client can start while that one is down); ``sentinel``, a primary
with replicas whose address Sentinel gives (REDIS_URL's host and port are then ignored; its
password, database and scheme are used). Every role opens its clients from it with
``redisconn.clients.open_client``, choosing only its options (``precompute.redisclient``,
``service.redisclient``, ``experiments.store.connect``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from contracts import env as envvars
from contracts.env import FromEnv, Var, var

DEFAULT_DATA_DIR = "var"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_TOPIC = "movielog"
DEFAULT_REQUEST_LOG_TOPIC = "recsys-requests"


def data_dir_var(*below: str) -> Var:
    """RECSYS_DATA_DIR, resolved when read (against the working directory of that moment),
    joined with ``below``."""

    def resolved(raw: str) -> Path:
        return Path(raw).resolve().joinpath(*below)

    return Var("RECSYS_DATA_DIR", resolved, default_factory=lambda: resolved(DEFAULT_DATA_DIR))


DATA_DIR = data_dir_var()  # the one root every pipeline stage writes under
SNAPSHOT_URI = Var("SNAPSHOT_URI", str)  # None (unset): under the caller's data directory
REDIS_URL = Var("REDIS_URL", envvars.redis_url, DEFAULT_REDIS_URL)
KAFKA_BOOTSTRAP = Var("KAFKA_BOOTSTRAP", envvars.bootstrap_servers, DEFAULT_KAFKA_BOOTSTRAP)
KAFKA_TOPIC = Var("KAFKA_TOPIC", str, DEFAULT_TOPIC)
REQUEST_LOG_KAFKA_BOOTSTRAP = Var("REQUEST_LOG_KAFKA_BOOTSTRAP", envvars.bootstrap_servers)
REQUEST_LOG_KAFKA_TOPIC = Var("REQUEST_LOG_KAFKA_TOPIC", str, DEFAULT_REQUEST_LOG_TOPIC)

REDIS_MODES = ("single", "cluster", "sentinel")


def _addresses(raw: str | None) -> list[tuple[str, int]]:
    """``host:port,...`` (already checked by ``bootstrap_servers``) as (host, port) pairs."""
    if not raw:
        return []
    pairs = (item.rpartition(":") for item in raw.split(","))
    return [(host.strip("[]"), int(port)) for host, _, port in pairs]


@dataclass(frozen=True)
class RedisTopology(FromEnv):
    """How the Redis of REDIS_URL is laid out: one node, a cluster, or Sentinel-managed."""

    mode: str = var("REDIS_MODE", envvars.choice(*REDIS_MODES), "single")
    cluster_nodes: str | None = var("REDIS_CLUSTER_NODES", envvars.bootstrap_servers)
    sentinels: str | None = var("REDIS_SENTINELS", envvars.bootstrap_servers)
    sentinel_master: str = var("REDIS_SENTINEL_MASTER", str, "recsys")

    def __post_init__(self) -> None:
        if self.mode == "sentinel" and not self.sentinels:
            raise envvars.SettingsError("REDIS_MODE=sentinel needs REDIS_SENTINELS")

    def cluster_startup_nodes(self) -> list[tuple[str, int]]:
        return _addresses(self.cluster_nodes)

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return _addresses(self.sentinels)

    @staticmethod
    def credentials(url: str) -> dict[str, Any]:
        """What of REDIS_URL applies to a primary Sentinel names: username, password,
        database, TLS (as redis-py's connection arguments); its host and port do not."""
        parts = urlsplit(url)
        options: dict[str, Any] = {"ssl": True} if parts.scheme == "rediss" else {}
        if parts.username:
            options["username"] = unquote(parts.username)
        if parts.password:
            options["password"] = unquote(parts.password)
        database = parts.path.strip("/")
        if database.isdigit():
            options["db"] = int(database)
        return options


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The one root every pipeline stage writes under."""
    return DATA_DIR.read(env)


def snapshot_location(root: Path | None = None, env: Mapping[str, str] | None = None) -> Path | str:
    """Where snapshots live: SNAPSHOT_URI if set, else ``root`` (a caller's own data
    directory), else the data directory."""
    return SNAPSHOT_URI.read(env) or root or data_dir(env)


def kafka_bootstrap(env: Mapping[str, str] | None = None) -> str:
    return KAFKA_BOOTSTRAP.read(env)


def kafka_topic(env: Mapping[str, str] | None = None) -> str:
    return KAFKA_TOPIC.read(env)
