"""Fixtures of the service's tests: Redis written the way precompute publishes
(``publish_lists``, ``movies``), the app through Flask's test client (``make_client``), the
service under a real gunicorn (``gunicorn``), readers of what it answers and exports
(``assert_contract_body``, ``scrape``, ``sample``, ``counter``), and what it falls back on
(``unreachable_url``, ``hung_redis``, ``fallback_file``, ``shipped_body``). ``service`` bundles
the ones most tests use together, on the session's Redis (a clean database per test).

The pure helpers' fixtures are session-scoped, so module-scoped fixtures (one gunicorn per
module) and hypothesis tests can use them too. The test modules write the user IDs they name
out themselves (KNOWN_USER = 220358, OTHER_USER = 227244, UNKNOWN_USER = 999_999).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import redis
import requests
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.cluster import RedisCluster

from contracts import rediskeys, response
from devstack.servers import LOOPBACK, free_port, wait_for_port
from service.api import STORE_KEY
from service.app import create_app
from service.lookup import RecommendationStore
from service.requestlog import RequestLog
from service.settings import SHIPPED_FALLBACK, Settings

ROOT = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, frozenset], float]


def _movies(tag: str, n: int = response.LIST_LENGTH) -> list[str]:
    """Movie IDs shaped like the stream's slugs; one non-ASCII, to prove byte-for-byte."""
    ids = [f"{tag}+movie+{i}+{1990 + i}" for i in range(n)]
    ids[1] = f"amélie+{tag}+2001"
    return ids


def _publish_lists(
    client: redis.Redis | RedisCluster,
    version: str,
    users: dict[int, list[str]],
    default: list[str],
    *,
    activate: bool = True,
) -> dict[int, str]:
    """Write one version the way precompute does: bodies under the version's prefix first,
    then one SET of the active pointer. Returns the bodies by user."""
    bodies = {uid: response.format_body(ids) for uid, ids in users.items()}
    with client.pipeline() as pipe:
        for uid, body in bodies.items():
            pipe.set(rediskeys.user(version, uid), body)
        for key in rediskeys.defaults(version):  # a copy per bucket, beside each user's list
            pipe.set(key, response.format_body(default))
        pipe.hset(rediskeys.meta(version), mapping={"model": "test", "users": len(bodies)})
        pipe.zadd(rediskeys.VERSIONS, {version: time.time()})
        pipe.execute()
    if activate:
        client.set(rediskeys.ACTIVE, version)
    return bodies


def _assert_contract_body(body: bytes) -> list[str]:
    """20 unique IDs on one line, comma-separated, no spaces."""
    text = body.decode("utf-8")
    assert "\n" not in text
    assert " " not in text
    ids = response.parse_body(text)
    assert len(ids) == response.LIST_LENGTH
    assert len(set(ids)) == response.LIST_LENGTH
    return ids


def _scrape(text: str) -> Samples:
    """Every sample of a Prometheus exposition, keyed by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _counter(name: str, **labels: str) -> float:
    """A metric of this process (the test client runs without multiprocess mode)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Gunicorn:
    """``python -m service`` in its own session, output to files; stop() is SIGTERM."""

    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    base: str = field(init=False)  # its URL
    stdout: Path = field(init=False)  # the request log
    stderr: Path = field(init=False)  # gunicorn's and the app's log

    def __post_init__(self) -> None:
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.stdout, self.stderr = self.log_dir / "service.out", self.log_dir / "service.err"

    def start(self) -> Gunicorn:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "SERVICE_BIND": f"{LOOPBACK}:{self.port}"}
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for_port(self.port, timeout=30)
        return self

    def metrics(self) -> Samples:
        """Every sample of its ``/metrics``, from whichever worker answers."""
        return _scrape(requests.get(f"{self.base}/metrics", timeout=5).text)

    def workers(self) -> set[int]:
        """The master's live child processes, read from /proc."""
        assert self.proc is not None
        children = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                children.add(int(stat.parent.name))
        return children

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@dataclass
class ServiceKit:
    """The session's Redis (``url``, and ``redis``, a client that decodes), lists published
    into it, the app on it through Flask's test client, the service on it under a real
    gunicorn, and the pure helpers: what most of the service's tests take at once."""

    url: str
    redis: redis.Redis
    make_client: Callable[..., FlaskClient]
    log_dir: Path

    movies = staticmethod(_movies)
    counter = staticmethod(_counter)
    sample = staticmethod(_sample)
    assert_contract_body = staticmethod(_assert_contract_body)

    def publish(
        self,
        version: str,
        users: dict[int, str],
        default: str,
        *,
        activate: bool = True,
        to: redis.Redis | None = None,
    ) -> dict[int, str]:
        """``publish_lists`` with ``movies(tag)`` for each user's tag in ``users`` and for
        ``default``, into this Redis unless ``to`` names another client; returns the bodies by
        user."""
        lists = {user: _movies(tag) for user, tag in users.items()}
        return _publish_lists(to or self.redis, version, lists, _movies(default), activate=activate)

    def client(self, **overrides: object) -> FlaskClient:
        """The app on this Redis (unless ``redis_url`` says otherwise), from Settings
        overrides."""
        return self.make_client(**{"redis_url": self.url, **overrides})

    def gunicorn(self, env: dict[str, str] | None = None, log_dir: Path | None = None) -> Gunicorn:
        """``python -m service`` started under a real gunicorn on this Redis (unless ``env``
        names another ``REDIS_URL``), logging to the test's tmp_path by default."""
        return Gunicorn({"REDIS_URL": self.url, **(env or {})}, log_dir or self.log_dir).start()


@pytest.fixture(scope="session")
def movies() -> Callable[..., list[str]]:
    """``movies(tag, n=20)``: a list of movie IDs, distinct per tag."""
    return _movies


@pytest.fixture(scope="session")
def publish_lists() -> Callable[..., dict[int, str]]:
    """``publish_lists(client, version, {user: movies}, default_movies, activate=True)``:
    the keys of one version written directly, as precompute writes them (unlike the root
    conftest's ``publisher``, which goes through precompute's write protocol); returns the
    bodies by user."""
    return _publish_lists


@pytest.fixture(scope="session")
def assert_contract_body() -> Callable[[bytes], list[str]]:
    """Asserts a body is the contract's one line of 20 unique IDs; returns the IDs."""
    return _assert_contract_body


@pytest.fixture(scope="session")
def scrape() -> Callable[[str], Samples]:
    """A Prometheus exposition (``/metrics``) -> every sample, keyed by (name, labels)."""
    return _scrape


@pytest.fixture(scope="session")
def sample() -> Callable[..., float]:
    """``sample(scraped, name, **labels)``: one sample's value, 0.0 if absent."""
    return _sample


@pytest.fixture(scope="session")
def counter() -> Callable[..., float]:
    """``counter(name, **labels)``: a metric of this process's registry, 0.0 if absent."""
    return _counter


@pytest.fixture(scope="session")
def gunicorn() -> type[Gunicorn]:
    """``gunicorn(env, log_dir).start()``: ``python -m service`` under a real gunicorn, on a
    free port; ``.base`` is its URL, ``.stop()`` sends SIGTERM and returns the exit code."""
    return Gunicorn


@pytest.fixture
def make_client() -> Iterator[Callable[..., FlaskClient]]:
    """Builds an app from Settings overrides (no request log); closes every store it made."""
    stores: list[RecommendationStore] = []

    def make(**overrides: object) -> FlaskClient:
        app = create_app(replace(Settings(), **overrides), request_log=RequestLog())
        stores.append(app.extensions[STORE_KEY])
        return app.test_client()

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def service(
    redis_url: str,
    redis_client: redis.Redis,
    make_client: Callable[..., FlaskClient],
    tmp_path: Path,
) -> ServiceKit:
    """``service.publish(version, {user: tag}, default_tag)``, ``service.client(**settings)``,
    ``service.gunicorn(env)``, ``service.redis``/``.url``, ``.movies``, ``.counter``,
    ``.sample``, ``.assert_contract_body``: see ``ServiceKit``."""
    return ServiceKit(redis_url, redis_client, make_client, tmp_path)


@pytest.fixture
def unreachable_url() -> str:
    """A Redis URL on a port that was just free: nobody listens, connecting is refused at
    once."""
    return f"redis://{LOOPBACK}:{free_port()}/0"


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A socket that accepts connections and never answers: a Redis stuck or blackholed."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen(64)
        yield f"redis://{LOOPBACK}:{sock.getsockname()[1]}/0"


@pytest.fixture
def fallback_file(tmp_path: Path) -> tuple[Path, str]:
    """A fallback file of its own (``FALLBACK_PATH``) and the body it holds."""
    body = response.format_body(_movies("baked"))
    path = tmp_path / "fallback.txt"
    path.write_text(body + "\n", encoding="utf-8")
    return path, body


@pytest.fixture(scope="session")
def shipped_body() -> bytes:
    """The body of the fallback list shipped with the image (``service/fallback.txt``)."""
    return SHIPPED_FALLBACK.read_text(encoding="utf-8").strip().encode()
