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
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from contracts import env as envvars
from contracts.env import Var

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
