"""The lookup service against a real Redis, through Flask's test client and a real gunicorn.

Redis is populated exactly as precompute publishes (``contracts.rediskeys`` keys, bodies from
``contracts.response.format_body``), so these tests pin the contract between the two. The
helpers at the top (``publish``, ``movies``, ``Gunicorn``, ``scrape``) are shared with the
other ``test_service_*`` modules.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import requests
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import TestResponse

from contracts import rediskeys, response
from contracts.userid import BAD_USER_ID
from devstack.servers import LOOPBACK, Server, free_port, wait_for_port
from service import settings
from service.api import STORE_KEY
from service.app import create_app
from service.fallback import FILE_VERSION, FallbackError
from service.lookup import Answer, RecommendationStore, load_fallback
from service.requestlog import RequestLog
from service.settings import SHIPPED_FALLBACK, Settings, SettingsError
from service.worker import TOO_LONG

ROOT = Path(__file__).resolve().parents[2]
KNOWN_USER = 220358
OTHER_USER = 227244
UNKNOWN_USER = 999_999
SHIPPED_BODY = SHIPPED_FALLBACK.read_text(encoding="utf-8").strip().encode()


# --- shared helpers -----------------------------------------------------------------------


def movies(tag: str, n: int = response.LIST_LENGTH) -> list[str]:
    """Movie IDs shaped like the stream's slugs; one non-ASCII, to prove byte-for-byte."""
    ids = [f"{tag}+movie+{i}+{1990 + i}" for i in range(n)]
    ids[1] = f"amélie+{tag}+2001"
    return ids


def publish(
    client: redis.Redis,
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
        pipe.set(rediskeys.default(version), response.format_body(default))
        pipe.hset(rediskeys.meta(version), mapping={"model": "test", "users": len(bodies)})
        pipe.zadd(rediskeys.VERSIONS, {version: time.time()})
        pipe.execute()
    if activate:
        client.set(rediskeys.ACTIVE, version)
    return bodies


def unreachable_url() -> str:
    """A port that was just free: nobody listens, connecting is refused at once."""
    return f"redis://{LOOPBACK}:{free_port()}/0"


def assert_contract_body(body: bytes) -> list[str]:
    """20 unique IDs on one line, comma-separated, no spaces."""
    text = body.decode("utf-8")
    assert "\n" not in text
    assert " " not in text
    ids = response.parse_body(text)
    assert len(ids) == response.LIST_LENGTH
    assert len(set(ids)) == response.LIST_LENGTH
    return ids


def scrape(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus exposition, keyed by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@dataclass
class Gunicorn:
    """``python -m service`` in its own session, output to files; stop() is SIGTERM."""

    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def stdout(self) -> Path:
        return self.log_dir / "service.out"

    @property
    def stderr(self) -> Path:
        return self.log_dir / "service.err"

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
def hung_redis() -> Iterator[str]:
    """A socket that accepts connections and never answers: a Redis stuck or blackholed."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen(64)
        yield f"redis://{LOOPBACK}:{sock.getsockname()[1]}/0"


@pytest.fixture
def fallback_file(tmp_path: Path) -> tuple[Path, str]:
    body = response.format_body(movies("baked"))
    path = tmp_path / "fallback.txt"
    path.write_text(body + "\n", encoding="utf-8")
    return path, body


def assert_one_line_text(resp: TestResponse, status: int) -> str:
    assert resp.status_code == status
    assert resp.content_type == response.CONTENT_TYPE
    text = resp.get_data(as_text=True)
    assert text
    assert "\n" not in text
    assert "<html" not in text.lower()  # not an HTML error page
    return text


def counter(name: str, **labels: str) -> float:
    """A metric of this process (the test client runs without multiprocess mode)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- answers ----------------------------------------------------------------------------


def test_known_user_gets_the_stored_body_byte_for_byte(
    redis_client: redis.Redis, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    bodies = publish(
        redis_client,
        "v1",
        {KNOWN_USER: movies("known"), OTHER_USER: movies("other")},
        movies("popular"),
    )
    client = make_client(redis_url=redis_url)

    resp = client.get(f"/recommend/{KNOWN_USER}")

    assert resp.status_code == 200
    assert resp.content_type == "text/plain; charset=utf-8"
    assert resp.data == bodies[KNOWN_USER].encode("utf-8")
    assert_contract_body(resp.data)
    assert resp.headers["X-Model-Version"] == "v1"
    assert resp.headers["X-AB-Variant"] == "control"
    assert resp.headers["X-Recommendation-Source"] == "personal"
    other = client.get(f"/recommend/{OTHER_USER}")
    assert other.data == bodies[OTHER_USER].encode("utf-8")


def test_unknown_user_gets_the_cold_start_list_and_is_counted(
    redis_client: redis.Redis, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    publish(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    client = make_client(redis_url=redis_url)
    before = counter("recsys_service_cold_start_answers_total")

    for userid in (UNKNOWN_USER, 2**63 - 1):
        resp = client.get(f"/recommend/{userid}")
        assert resp.status_code == 200
        assert resp.content_type == response.CONTENT_TYPE
        assert resp.data == response.format_body(movies("popular")).encode("utf-8")
        assert resp.headers["X-Model-Version"] == "v1"
        assert resp.headers["X-Recommendation-Source"] == "cold_start"
    assert counter("recsys_service_cold_start_answers_total") - before == 2


@pytest.mark.parametrize(
    "accept",
    ["application/json", "application/json, text/plain;q=0.5", "text/*;q=0.1, application/*"],
)
def test_accept_json_gets_the_same_list_as_json(
    accept: str,
    redis_client: redis.Redis,
    redis_url: str,
    make_client: Callable[..., FlaskClient],
) -> None:
    publish(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    client = make_client(redis_url=redis_url)
    resp = client.get(f"/recommend/{KNOWN_USER}", headers={"Accept": accept})
    assert resp.status_code == 200
    assert resp.content_type == "application/json"
    assert resp.headers["Vary"] == "Accept"
    assert resp.headers["X-Model-Version"] == "v1"
    assert json.loads(resp.data) == {
        "user": KNOWN_USER,
        "movies": movies("known"),
        "version": "v1",
        "variant": "control",
        "source": "personal",
    }


@pytest.mark.parametrize(
    "accept", [None, "*/*", "text/plain", "text/html", "application/json;q=0.1, text/plain"]
)
def test_anything_but_a_json_preference_gets_the_contract_text(
    accept: str | None,
    redis_client: redis.Redis,
    redis_url: str,
    make_client: Callable[..., FlaskClient],
) -> None:
    bodies = publish(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    client = make_client(redis_url=redis_url)
    headers = {"Accept": accept} if accept else {}
    resp = client.get(f"/recommend/{KNOWN_USER}", headers=headers)
    assert resp.status_code == 200
    assert resp.content_type == response.CONTENT_TYPE
    assert resp.data == bodies[KNOWN_USER].encode()


@pytest.mark.parametrize(
    "userid",
    [
        "0",
        "-1",
        "abc",
        "1.5",
        "01",  # canonical form only: one spelling per user (see service/api.py)
        "+1",
        "1e3",
        "1" * 30,
        "9" * 2000,  # absurdly long, still within gunicorn's request-line limit
        "9223372036854775808",  # 2**63: fits the pattern, not a signed 64-bit ID
        "%20",
        "12%0A",  # a trailing newline must not slip past the pattern
        "%D9%A1%D9%A2",  # Arabic-Indic digits: str.isdigit() would say yes
    ],
)
def test_bad_userid_is_a_one_line_400(
    userid: str, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    client = make_client(redis_url=redis_url)
    resp = client.get(f"/recommend/{userid}")
    assert assert_one_line_text(resp, 400) == BAD_USER_ID


def test_healthz_answers_without_redis(make_client: Callable[..., FlaskClient]) -> None:
    client = make_client(redis_url=unreachable_url())
    resp = client.get("/healthz")
    assert assert_one_line_text(resp, 200) == "ok"


def test_readyz_needs_redis_and_an_active_version(
    redis_client: redis.Redis, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    assert "redis unreachable" in assert_one_line_text(
        make_client(redis_url=unreachable_url()).get("/readyz"), 503
    )
    client = make_client(redis_url=redis_url)
    assert "no active version" in assert_one_line_text(client.get("/readyz"), 503)
    publish(redis_client, "v1", {}, movies("popular"))
    assert assert_one_line_text(client.get("/readyz"), 200) == "ready: active version v1"


@pytest.mark.parametrize("path", ["/nope", "/recommend/", "/recommend/1/2", "/recommend/1/"])
def test_unknown_path_is_a_plain_404(
    path: str, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    client = make_client(redis_url=redis_url)
    assert "not found" in assert_one_line_text(client.get(path), 404)


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_other_methods_are_a_plain_405_with_allow(
    method: str, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    client = make_client(redis_url=redis_url)
    resp = getattr(client, method)(f"/recommend/{KNOWN_USER}")
    assert "method not allowed" in assert_one_line_text(resp, 405)
    assert "GET" in resp.headers["Allow"]


class BrokenStore(RecommendationStore):
    """Stands in for a bug below the route: the app must still answer one line of text."""

    def recommend(self, user_id: int) -> Answer:
        raise RuntimeError(f"bug\nfor {user_id}")


def test_a_bug_is_a_plain_500_not_a_traceback() -> None:
    store = BrokenStore(
        lambda: redis.Redis.from_url(unreachable_url()), load_fallback(SHIPPED_FALLBACK)
    )
    app = create_app(store=store, request_log=RequestLog())
    assert app.extensions[STORE_KEY] is store
    resp = app.test_client().get(f"/recommend/{KNOWN_USER}")
    assert assert_one_line_text(resp, 500) == "internal server error"
    store.close()


class FlakyClient(redis.Redis):
    """A client that fails in a way no RedisError covers, as a library bug would."""

    def mget(self, *args: object, **kwargs: object) -> list[bytes | None]:
        raise ValueError("surprise")


def test_store_never_raises_even_on_unexpected_errors(
    redis_client: redis.Redis, redis_url: str, fallback_file: tuple[Path, str]
) -> None:
    publish(redis_client, "v1", {}, movies("popular"))
    path, body = fallback_file
    store = RecommendationStore(lambda: FlakyClient.from_url(redis_url), load_fallback(path))
    before = counter("recsys_service_fallbacks_total", cause="bug")
    try:
        answer = store.recommend(KNOWN_USER)
    finally:
        store.close()
    assert answer == Answer(body.encode(), FILE_VERSION, "fallback", "control")
    assert counter("recsys_service_fallbacks_total", cause="bug") - before == 1


# --- versions and round trips ------------------------------------------------------------


def test_switched_active_version_is_picked_up_after_the_refresh_interval(
    redis_client: redis.Redis, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    refresh = 0.5
    v1 = publish(redis_client, "v1", {KNOWN_USER: movies("one")}, movies("pop1"))
    client = make_client(redis_url=redis_url, version_refresh_seconds=refresh)
    assert client.get(f"/recommend/{KNOWN_USER}").data == v1[KNOWN_USER].encode()

    v2 = publish(redis_client, "v2", {KNOWN_USER: movies("two")}, movies("pop2"))
    switched_at = time.monotonic()
    cached = client.get(f"/recommend/{KNOWN_USER}")
    if time.monotonic() - switched_at < refresh:  # the cached version is still in use
        assert cached.headers["X-Model-Version"] == "v1"
        assert cached.data == v1[KNOWN_USER].encode()

    time.sleep(refresh + 0.1)
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert resp.headers["X-Model-Version"] == "v2"
    assert resp.data == v2[KNOWN_USER].encode()
    unknown = client.get(f"/recommend/{UNKNOWN_USER}")
    assert unknown.data == response.format_body(movies("pop2")).encode()


def test_steady_state_costs_one_mget_per_request(
    redis_client: redis.Redis, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    publish(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    client = make_client(redis_url=redis_url, version_refresh_seconds=60.0)
    client.get(f"/recommend/{KNOWN_USER}")  # reads the routing table once
    redis_client.config_resetstat()

    for i in range(50):
        assert client.get(f"/recommend/{KNOWN_USER if i % 2 else UNKNOWN_USER}").status_code == 200

    stats = redis_client.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 50
    assert "cmdstat_get" not in stats
    ours = {k: v for k, v in stats.items() if k not in {"cmdstat_config", "cmdstat_ping"}}
    calls = sum(v["calls"] for v in ours.values())
    assert calls == 50, stats


# --- failures ---------------------------------------------------------------------------


def test_redis_dying_after_a_default_was_seen_answers_200_from_memory(
    make_client: Callable[..., FlaskClient], private_redis: Server
) -> None:
    server = private_redis
    url = f"redis://{LOOPBACK}:{server.port}/0"
    own = redis.Redis.from_url(url)
    bodies = publish(own, "v7", {KNOWN_USER: movies("known")}, movies("popular"))
    own.close()
    client = make_client(redis_url=url, version_refresh_seconds=0.05, redis_breaker_seconds=0.05)
    assert client.get(f"/recommend/{KNOWN_USER}").data == bodies[KNOWN_USER].encode()
    errors_before = counter("recsys_service_fallbacks_total", cause="redis_error")

    server.stop()
    for userid in (KNOWN_USER, UNKNOWN_USER, KNOWN_USER, UNKNOWN_USER):
        started = time.monotonic()
        resp = client.get(f"/recommend/{userid}")
        assert time.monotonic() - started < 0.25
        assert resp.status_code == 200
        assert resp.data == response.format_body(movies("popular")).encode()
        assert resp.headers["X-Model-Version"] == "v7"
        assert resp.headers["X-Recommendation-Source"] == "fallback"
        time.sleep(0.06)  # let the routing cache expire, so the refresh path fails too
    assert counter("recsys_service_fallbacks_total", cause="redis_error") > errors_before

    server.start()  # Redis back, empty: publish again and expect personal answers
    own = redis.Redis.from_url(url)
    publish(own, "v8", {KNOWN_USER: movies("again")}, movies("popular"))
    own.close()
    time.sleep(0.1)  # past the breaker's pause and the refresh interval
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert resp.headers["X-Recommendation-Source"] == "personal"
    assert resp.headers["X-Model-Version"] == "v8"


def test_slow_redis_times_out_fast_to_the_fallback(
    make_client: Callable[..., FlaskClient], private_redis: Server
) -> None:
    """CLIENT PAUSE makes a real Redis stop answering for a while: the slow-Redis case."""
    server = private_redis
    url = f"redis://{LOOPBACK}:{server.port}/0"
    own = redis.Redis.from_url(url)
    users = {KNOWN_USER: movies("known"), OTHER_USER: movies("other")}
    bodies = publish(own, "v1", users, movies("popular"))
    client = make_client(redis_url=url, redis_timeout_ms=30, redis_breaker_seconds=0.1)
    assert client.get(f"/recommend/{KNOWN_USER}").data == bodies[KNOWN_USER].encode()
    timeouts_before = counter("recsys_service_redis_errors_total", error="TimeoutError")

    own.execute_command("CLIENT", "PAUSE", "400", "ALL")
    started = time.monotonic()
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert time.monotonic() - started < 0.2  # one 30 ms timeout, not the 400 ms pause
    assert resp.status_code == 200
    assert resp.headers["X-Recommendation-Source"] == "fallback"
    assert counter("recsys_service_redis_errors_total", error="TimeoutError") > timeouts_before

    time.sleep(0.6)  # the pause is over, and so is the breaker's
    # Another user: a reply left over from the timed-out request must not be read as this
    # one's (the timed-out connection is dropped, not reused).
    resp = client.get(f"/recommend/{OTHER_USER}")
    assert resp.headers["X-Recommendation-Source"] == "personal"
    assert resp.data == bodies[OTHER_USER].encode()
    own.close()


def test_a_connection_closed_by_redis_is_reopened_within_the_request(
    redis_client: redis.Redis, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    """After a Redis restart or failover every pooled socket is dead: the next request
    reconnects and retries once, and still gets its own list, not the fallback."""
    bodies = publish(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    client = make_client(redis_url=redis_url, version_refresh_seconds=60.0)
    assert client.get(f"/recommend/{KNOWN_USER}").headers["X-Recommendation-Source"] == "personal"
    fallbacks_before = counter("recsys_service_fallbacks_total", cause="redis_error")
    errors_before = counter("recsys_service_redis_errors_total", error="ConnectionError")

    killed = redis_client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert killed >= 1  # the service's connection is gone
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert resp.headers["X-Recommendation-Source"] == "personal"
    assert resp.data == bodies[KNOWN_USER].encode()
    assert counter("recsys_service_fallbacks_total", cause="redis_error") == fallbacks_before
    assert counter("recsys_service_redis_errors_total", error="ConnectionError") == errors_before


def test_unreachable_redis_with_fallback_file_answers_200_from_the_file(
    fallback_file: tuple[Path, str], make_client: Callable[..., FlaskClient]
) -> None:
    path, body = fallback_file
    client = make_client(redis_url=unreachable_url(), fallback_path=path)
    started = time.monotonic()
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert time.monotonic() - started < 0.25
    assert resp.status_code == 200
    assert resp.data == body.encode()
    assert resp.headers["X-Model-Version"] == FILE_VERSION
    assert resp.headers["X-Recommendation-Source"] == "fallback"


def test_cold_start_without_redis_serves_the_list_shipped_with_the_image(
    make_client: Callable[..., FlaskClient],
) -> None:
    client = make_client(redis_url=unreachable_url())  # FALLBACK_PATH left at its default
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert resp.status_code == 200
    assert resp.data == SHIPPED_BODY
    assert_contract_body(resp.data)
    assert resp.headers["X-Model-Version"] == FILE_VERSION


def test_the_shipped_list_is_in_the_image() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY service/ service/" in dockerfile
    assert SHIPPED_FALLBACK.parent == ROOT / "service"
    assert_contract_body(SHIPPED_BODY)


def test_no_active_version_answers_from_the_fallback(
    redis_url: str, fallback_file: tuple[Path, str], make_client: Callable[..., FlaskClient]
) -> None:
    before = counter("recsys_service_fallbacks_total", cause="no_active_version")
    resp = make_client(redis_url=redis_url).get("/recommend/1")
    assert resp.status_code == 200
    assert resp.data == SHIPPED_BODY
    path, body = fallback_file
    resp = make_client(redis_url=redis_url, fallback_path=path).get("/recommend/1")
    assert resp.status_code == 200
    assert resp.data == body.encode()
    assert counter("recsys_service_fallbacks_total", cause="no_active_version") - before == 2


def test_active_version_without_its_keys_falls_back_to_the_last_default(
    redis_client: redis.Redis, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    publish(redis_client, "v1", {}, movies("popular"))
    client = make_client(redis_url=redis_url, version_refresh_seconds=0.0)
    assert client.get(f"/recommend/{UNKNOWN_USER}").headers["X-Model-Version"] == "v1"

    redis_client.set(rediskeys.ACTIVE, "gone")  # e.g. cleaned up, or a publish half-done
    resp = client.get(f"/recommend/{UNKNOWN_USER}")
    assert resp.status_code == 200
    assert resp.data == response.format_body(movies("popular")).encode()
    assert resp.headers["X-Model-Version"] == "v1"
    assert resp.headers["X-Recommendation-Source"] == "fallback"


def test_rollback_deleting_the_cached_version_is_noticed_on_the_next_request(
    redis_client: redis.Redis, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    """precompute's rollback switches ACTIVE back and deletes the version it leaves at once;
    the service must not serve non-personal answers for a whole refresh interval."""
    v1 = publish(redis_client, "v1", {KNOWN_USER: movies("one")}, movies("pop1"))
    publish(redis_client, "v2", {KNOWN_USER: movies("two")}, movies("pop2"))
    client = make_client(redis_url=redis_url, version_refresh_seconds=60.0)
    assert client.get(f"/recommend/{KNOWN_USER}").headers["X-Model-Version"] == "v2"

    redis_client.set(rediskeys.ACTIVE, "v1")
    redis_client.delete(*redis_client.keys(rediskeys.version_pattern("v2")))
    gap = client.get(f"/recommend/{KNOWN_USER}")
    assert gap.status_code == 200
    assert gap.headers["X-Recommendation-Source"] == "fallback"
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert resp.headers["X-Model-Version"] == "v1"
    assert resp.headers["X-Recommendation-Source"] == "personal"
    assert resp.data == v1[KNOWN_USER].encode()


@pytest.mark.parametrize(
    "content", ["a+2001,a+2001\n", "", "a+2001,b+2002\n", "a+2001,,b+2002\n", b"\xff\xfe"]
)
def test_unusable_fallback_file_stops_the_service_at_startup(
    content: str | bytes, tmp_path: Path
) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(FallbackError, match="FALLBACK_PATH"):
        create_app(Settings(redis_url=unreachable_url(), fallback_path=path))
    with pytest.raises(FallbackError, match="unusable"):
        load_fallback(tmp_path / "missing.txt")


def test_main_refuses_to_start_with_an_unusable_fallback(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("only+one+1999\n")
    out = subprocess.run(
        [sys.executable, "-m", "service"],
        check=False,
        cwd=ROOT,
        env={**os.environ, "FALLBACK_PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "FALLBACK_PATH" in out.stderr
    assert "Traceback" not in out.stderr


def test_hung_redis_costs_one_timeout_even_under_concurrency(
    hung_redis: str, fallback_file: tuple[Path, str]
) -> None:
    """Concurrent first requests must not queue behind each other's timeouts."""
    path, body = fallback_file
    store = RecommendationStore.from_settings(
        Settings(redis_url=hung_redis, redis_timeout_ms=100, fallback_path=path)
    )

    def timed(userid: int) -> tuple[float, Answer]:
        started = time.monotonic()
        answer = store.recommend(userid)
        return time.monotonic() - started, answer

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(timed, range(1, 9)))
    finally:
        store.close()
    assert all(a.body == body.encode() and a.source == "fallback" for _, a in results)
    assert max(elapsed for elapsed, _ in results) < 0.35  # 8 stacked timeouts would be 0.8 s


def test_breaker_stops_paying_timeouts_to_a_hung_redis(hung_redis: str) -> None:
    """After REDIS_BREAKER_FAILURES timeouts in a row, requests skip Redis for a while."""
    store = RecommendationStore.from_settings(
        Settings(
            redis_url=hung_redis,
            redis_timeout_ms=100,
            redis_breaker_failures=2,
            redis_breaker_seconds=30,
        )
    )
    skipped_before = counter("recsys_service_fallbacks_total", cause="redis_skipped")
    try:
        for _ in range(2):
            assert store.recommend(KNOWN_USER).source == "fallback"  # ~100 ms each
        started = time.monotonic()
        answers = [store.recommend(KNOWN_USER) for _ in range(50)]
        elapsed = time.monotonic() - started
    finally:
        store.close()
    assert {a.body for a in answers} == {SHIPPED_BODY}
    assert elapsed < 0.5  # 50 timeouts would be 5 s
    skipped = counter("recsys_service_fallbacks_total", cause="redis_skipped") - skipped_before
    assert skipped == 50


# --- request log --------------------------------------------------------------------------


def test_request_log_writes_one_json_line_per_request(
    redis_client: redis.Redis, redis_url: str
) -> None:
    bodies = publish(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    read_end, write_end = os.pipe()
    store = RecommendationStore.from_settings(Settings(redis_url=redis_url))
    app = create_app(store=store, request_log=RequestLog(write_end))
    client = app.test_client()
    try:
        for path in (f"/recommend/{KNOWN_USER}", f"/recommend/{UNKNOWN_USER}", "/recommend/01"):
            client.get(path)
        client.get("/healthz")  # not a recommendation: no line
        os.close(write_end)
        with os.fdopen(read_end, "rb") as lines:
            records = [json.loads(line) for line in lines.read().splitlines()]
    finally:
        store.close()
    assert [(r["user"], r["status"]) for r in records] == [
        (KNOWN_USER, 200),
        (UNKNOWN_USER, 200),
        (None, 400),
    ]
    known, unknown, bad = records
    assert known["result"] == bodies[KNOWN_USER]  # JSON-escaped on the wire, same text
    assert (known["variant"], known["version"], known["source"]) == ("control", "v1", "personal")
    assert unknown["source"] == "cold_start"
    assert unknown["result"] == response.format_body(movies("popular"))
    assert bad["result"] == ""
    assert "variant" not in bad
    for record in records:
        assert 0 <= record["latency_ms"] < 5000
        assert record["time"].endswith("Z")
        logged_at = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - logged_at).total_seconds()) < 60


def test_request_log_write_errors_are_counted_not_raised(
    redis_client: redis.Redis, redis_url: str
) -> None:
    publish(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    read_end, write_end = os.pipe()
    os.close(read_end)  # writing now fails with EPIPE
    store = RecommendationStore.from_settings(Settings(redis_url=redis_url))
    app = create_app(store=store, request_log=RequestLog(write_end))
    before = counter("recsys_service_request_log_dropped_total", cause="stdout_error")
    try:
        resp = app.test_client().get(f"/recommend/{KNOWN_USER}")
    finally:
        store.close()
        os.close(write_end)
    assert resp.status_code == 200
    assert counter("recsys_service_request_log_dropped_total", cause="stdout_error") > before


# --- settings, packaging ------------------------------------------------------------------

DOCUMENTED_DEFAULTS = [
    ("REDIS_URL", "redis://127.0.0.1:6379/0"),
    ("REDIS_TIMEOUT_MS", "50"),
    ("REDIS_BREAKER_FAILURES", "3"),
    ("REDIS_BREAKER_SECONDS", "0.5"),
    ("VERSION_REFRESH_SECONDS", "1.0"),
    ("FALLBACK_PATH", "service/fallback.txt"),
    ("SERVICE_BIND", "127.0.0.1:8082"),
    ("WEB_CONCURRENCY", "2"),
    ("GUNICORN_THREADS", "4"),
    ("REQUEST_LOG", "stdout"),
    ("REQUEST_LOG_KAFKA_BOOTSTRAP", "(unset)"),
    ("REQUEST_LOG_KAFKA_TOPIC", "recsys-requests"),
    ("REQUEST_LOG_QUEUE_SIZE", "10000"),
    ("PROMETHEUS_MULTIPROC_DIR", "(fresh"),
]


def test_settings_defaults_are_the_documented_ones() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"REDIS_URL": "", "FALLBACK_PATH": " "}) == Settings()
    s = Settings()
    assert (s.redis_url, s.redis_timeout_ms, s.version_refresh_seconds) == (
        "redis://127.0.0.1:6379/0",
        50,
        1.0,
    )
    assert (s.redis_breaker_failures, s.redis_breaker_seconds) == (3, 0.5)
    assert s.fallback_path == ROOT / "service" / "fallback.txt"
    assert (s.bind, s.web_concurrency, s.gunicorn_threads) == ("127.0.0.1:8082", 2, 4)
    assert (s.request_log, s.request_log_kafka_bootstrap) == ("stdout", None)
    assert (s.request_log_kafka_topic, s.request_log_queue_size) == ("recsys-requests", 10_000)
    assert s.metrics_dir is None
    doc = settings.__doc__ or ""
    for name, default in DOCUMENTED_DEFAULTS:
        line = next(line for line in doc.splitlines() if line.split()[:1] == [name])
        assert line.split()[1] == default


def test_settings_from_env_parses_and_rejects() -> None:
    env = {
        "REDIS_URL": "redis://10.0.0.5:6380/2",
        "REDIS_TIMEOUT_MS": "30",
        "REDIS_BREAKER_FAILURES": "5",
        "REDIS_BREAKER_SECONDS": "2",
        "VERSION_REFRESH_SECONDS": "0.25",
        "FALLBACK_PATH": "/srv/fallback.txt",
        "SERVICE_BIND": "0.0.0.0:8082",
        "WEB_CONCURRENCY": "3",
        "GUNICORN_THREADS": "8",
        "REQUEST_LOG": "off",
        "REQUEST_LOG_KAFKA_BOOTSTRAP": "k1:9092, k2:9092",
        "REQUEST_LOG_KAFKA_TOPIC": "requests17",
        "REQUEST_LOG_QUEUE_SIZE": "50",
        "PROMETHEUS_MULTIPROC_DIR": "/run/metrics",
    }
    assert Settings.from_env(env) == Settings(
        redis_url="redis://10.0.0.5:6380/2",
        redis_timeout_ms=30,
        version_refresh_seconds=0.25,
        fallback_path=Path("/srv/fallback.txt"),
        bind="0.0.0.0:8082",
        web_concurrency=3,
        gunicorn_threads=8,
        redis_breaker_failures=5,
        redis_breaker_seconds=2.0,
        request_log="off",
        request_log_kafka_bootstrap="k1:9092,k2:9092",
        request_log_kafka_topic="requests17",
        request_log_queue_size=50,
        metrics_dir=Path("/run/metrics"),
    )
    for name, value in [
        ("REDIS_TIMEOUT_MS", "0"),
        ("REDIS_TIMEOUT_MS", "fast"),
        ("REDIS_BREAKER_FAILURES", "0"),
        ("REDIS_BREAKER_SECONDS", "-1"),
        ("VERSION_REFRESH_SECONDS", "-1"),
        ("WEB_CONCURRENCY", "2.5"),
        ("REDIS_URL", "localhost:6379"),
        ("SERVICE_BIND", "8082"),
        ("REQUEST_LOG", "stderr"),
        ("REQUEST_LOG_KAFKA_BOOTSTRAP", "kafka"),
        ("REQUEST_LOG_QUEUE_SIZE", "none"),
    ]:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})


SERVICE_MODULES = sorted(p.stem for p in (ROOT / "service").glob("*.py") if p.stem != "__init__")
# The image: flask (werkzeug is its part), gunicorn, redis (+hiredis), prometheus_client, and
# kafka-python, which only kafkasink imports, lazily.
# contracts is the standard-library package the service shares with the pipeline.
LEAN = {
    "flask",
    "werkzeug",
    "gunicorn",
    "redis",
    "prometheus_client",
    "service",
    "contracts",
    "__future__",
}


@pytest.mark.parametrize("module", SERVICE_MODULES)
def test_service_modules_import_only_the_lean_set(module: str) -> None:
    tree = ast.parse((ROOT / "service" / f"{module}.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            imported.add(node.module.split(".")[0])
    assert imported  # the walk found the imports at all
    allowed = LEAN | ({"kafka"} if module == "kafkasink" else set())
    assert imported - allowed - set(sys.stdlib_module_names) == set()


def test_requirements_pin_exactly_the_lean_set() -> None:
    pins = [
        line.split("==")[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert sorted(pins) == sorted(
        ["flask", "gunicorn", "redis", "hiredis", "prometheus-client", "kafka-python"]
    )


def test_importing_the_service_pulls_in_no_pipeline_package() -> None:
    """And precompute can import ``contracts.rediskeys`` without Flask or redis."""
    modules = ", ".join(f"service.{m}" for m in SERVICE_MODULES if m != "gunicorn.conf")
    code = f"""
import json, sys
import contracts.ab, contracts.env, contracts.locations, contracts.rediskeys
import contracts.requestrecord, contracts.response, contracts.userid
light = sorted(m for m in sys.modules if m.split('.')[0] in {{'flask', 'redis', 'werkzeug'}})
import {modules}
print(json.dumps({{'light': light, 'top': sorted({{m.split('.')[0] for m in sys.modules}})}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    found = json.loads(out.stdout)
    assert found["light"] == []
    heavy = {"numpy", "pandas", "airflow", "torch", "surprise", "kafka", "sqlalchemy", "scipy"}
    assert heavy & set(found["top"]) == set()


def test_main_help_prints_the_variables() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "service", "--help"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0
    for name, _ in DOCUMENTED_DEFAULTS:
        assert name in out.stdout


# --- real gunicorn ------------------------------------------------------------------------


def test_python_m_service_serves_under_gunicorn(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    bodies = publish(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    service = Gunicorn(
        {"REDIS_URL": redis_url, "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2"}, tmp_path
    ).start()
    try:
        with requests.Session() as http:
            known = http.get(f"{service.base}/recommend/{KNOWN_USER}", timeout=5)
            assert known.status_code == 200
            assert known.headers["Content-Type"] == response.CONTENT_TYPE
            assert known.content == bodies[KNOWN_USER].encode("utf-8")
            assert known.headers["X-Recommendation-Source"] == "personal"
            assert known.headers["X-Model-Version"] == "v1"
            assert known.headers["X-AB-Variant"] == "control"

            as_json = http.get(
                f"{service.base}/recommend/{KNOWN_USER}",
                headers={"Accept": "application/json"},
                timeout=5,
            )
            assert as_json.json()["movies"] == movies("known")

            unknown = http.get(f"{service.base}/recommend/{UNKNOWN_USER}", timeout=5)
            assert unknown.status_code == 200
            assert unknown.content == response.format_body(movies("popular")).encode()
            assert unknown.headers["X-Recommendation-Source"] == "cold_start"

            bad = http.get(f"{service.base}/recommend/01", timeout=5)
            assert bad.status_code == 400
            assert bad.text == BAD_USER_ID
            # Past gunicorn's request-line limit the app never sees it: still a one-line 400,
            # not gunicorn's HTML 414 page.
            huge = http.get(f"{service.base}/recommend/{'9' * 5000}", timeout=5)
            assert huge.status_code == 400
            assert huge.headers["Content-Type"] == response.CONTENT_TYPE
            assert huge.content == TOO_LONG and b"\n" not in huge.content

            health = http.get(f"{service.base}/healthz", timeout=5)
            assert (health.status_code, health.text) == (200, "ok")
            ready = http.get(f"{service.base}/readyz", timeout=5)
            assert (ready.status_code, ready.text) == (200, "ready: active version v1")
            spec = http.get(f"{service.base}/openapi.json", timeout=5)
            assert spec.json()["paths"]["/recommend/{userid}"]["get"]["operationId"]

        deadline = time.monotonic() + 15
        while service.stderr.read_text().count("Booting worker") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        returncode = service.stop()
    log_text = service.stderr.read_text()
    assert returncode == 0, log_text
    assert "Using worker: service.worker.PlainErrorThreadWorker" in log_text
    assert log_text.count("Booting worker") == 2
    assert "Traceback" not in log_text
    assert "Control socket" not in log_text
    lines = [json.loads(line) for line in service.stdout.read_text().splitlines()]
    assert [line["user"] for line in lines] == [KNOWN_USER, KNOWN_USER, UNKNOWN_USER, None]
    assert "GET /recommend" not in service.stdout.read_text()  # no access log


def test_main_checks_config_and_rejects_bad_variables() -> None:
    """``--check-config`` loads gunicorn.conf.py and the app factory without serving."""
    env = {**os.environ, "REDIS_URL": unreachable_url()}
    ok = subprocess.run(
        [sys.executable, "-m", "service", "--check-config"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "service"],
        check=False,
        cwd=ROOT,
        env={**env, "WEB_CONCURRENCY": "zero"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "WEB_CONCURRENCY" in bad.stderr
    assert "Traceback" not in bad.stderr
