"""The lookup service against a real Redis, through Flask's test client and a real gunicorn.

Redis is populated exactly as precompute publishes (``service.rediskeys`` keys, bodies from
``service.response.format_body``), so these tests pin the contract between the two.
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
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import requests
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from devstack.servers import LOOPBACK, free_port, redis_server, wait_for_port
from service import rediskeys, response, settings
from service.app import create_app
from service.routes import STORE_KEY
from service.settings import Settings, SettingsError
from service.store import FILE_VERSION, Answer, RecommendationStore, Unavailable

ROOT = Path(__file__).resolve().parent.parent
KNOWN_USER = 220358
OTHER_USER = 227244
UNKNOWN_USER = 999_999
BAD_ID_REASON = f"userid must be a positive integer <= {2**63 - 1}"


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


@pytest.fixture
def make_client() -> Iterator[Callable[..., FlaskClient]]:
    """Builds an app from Settings overrides; closes every store it made."""
    stores: list[RecommendationStore] = []

    def make(**overrides: object) -> FlaskClient:
        app = create_app(replace(Settings(), **overrides))
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
    assert b"\n" not in resp.data
    assert b" " not in resp.data
    ids = response.parse_body(resp.get_data(as_text=True))
    assert len(ids) == 20
    assert len(set(ids)) == 20
    assert resp.headers["X-Model-Version"] == "v1"
    assert resp.headers["X-Recommendation-Source"] == "personal"
    other = client.get(f"/recommend/{OTHER_USER}")
    assert other.data == bodies[OTHER_USER].encode("utf-8")


def test_unknown_user_gets_the_cold_start_list(
    redis_client: redis.Redis, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    publish(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    client = make_client(redis_url=redis_url)

    for userid in (UNKNOWN_USER, 2**63 - 1):
        resp = client.get(f"/recommend/{userid}")
        assert resp.status_code == 200
        assert resp.content_type == response.CONTENT_TYPE
        assert resp.data == response.format_body(movies("popular")).encode("utf-8")
        assert resp.headers["X-Model-Version"] == "v1"
        assert resp.headers["X-Recommendation-Source"] == "cold_start"


@pytest.mark.parametrize(
    "userid",
    [
        "0",
        "-1",
        "abc",
        "1.5",
        "01",  # canonical form only: one spelling per user (see service/routes.py)
        "+1",
        "1e3",
        "1" * 30,
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
    assert assert_one_line_text(resp, 400) == BAD_ID_REASON


def test_healthz_answers_without_redis(make_client: Callable[..., FlaskClient]) -> None:
    client = make_client(redis_url=unreachable_url())
    resp = client.get("/healthz")
    assert assert_one_line_text(resp, 200) == "ok"


@pytest.mark.parametrize("path", ["/nope", "/recommend/", "/recommend/1/2", "/recommend/1/"])
def test_unknown_path_is_a_plain_404(
    path: str, redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    client = make_client(redis_url=redis_url)
    assert "not found" in assert_one_line_text(client.get(path), 404)


def test_post_is_a_plain_405_with_allow(
    redis_url: str, make_client: Callable[..., FlaskClient]
) -> None:
    client = make_client(redis_url=redis_url)
    resp = client.post(f"/recommend/{KNOWN_USER}")
    assert "method not allowed" in assert_one_line_text(resp, 405)
    assert "GET" in resp.headers["Allow"]


class BrokenStore(RecommendationStore):
    """Stands in for a bug below the route: the app must still answer one line of text."""

    def recommend(self, user_id: int) -> Answer | Unavailable:
        raise RuntimeError(f"bug\nfor {user_id}")


def test_a_bug_is_a_plain_500_not_a_traceback() -> None:
    store = BrokenStore(redis.Redis.from_url(unreachable_url()))
    app = create_app(store=store)
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
    store = RecommendationStore(FlakyClient.from_url(redis_url), fallback_path=path)
    try:
        answer = store.recommend(KNOWN_USER)
    finally:
        store.close()
    assert answer == Answer(body.encode(), FILE_VERSION, "fallback")


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
    client.get(f"/recommend/{KNOWN_USER}")  # reads the active version once
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
    tmp_path: Path, make_client: Callable[..., FlaskClient]
) -> None:
    server = redis_server(free_port(), tmp_path / "redis").start()
    try:
        url = f"redis://{LOOPBACK}:{server.port}/0"
        own = redis.Redis.from_url(url)
        bodies = publish(own, "v7", {KNOWN_USER: movies("known")}, movies("popular"))
        own.close()
        client = make_client(redis_url=url, version_refresh_seconds=0.05)
        assert client.get(f"/recommend/{KNOWN_USER}").data == bodies[KNOWN_USER].encode()

        server.stop()
        for userid in (KNOWN_USER, UNKNOWN_USER, KNOWN_USER):
            started = time.monotonic()
            resp = client.get(f"/recommend/{userid}")
            assert time.monotonic() - started < 0.25
            assert resp.status_code == 200
            assert resp.data == response.format_body(movies("popular")).encode()
            assert resp.headers["X-Model-Version"] == "v7"
            assert resp.headers["X-Recommendation-Source"] == "fallback"
            time.sleep(0.06)  # let the version cache expire, so the refresh path fails too

        server.start()  # Redis back, empty: publish again and expect personal answers
        own = redis.Redis.from_url(url)
        publish(own, "v8", {KNOWN_USER: movies("again")}, movies("popular"))
        own.close()
        time.sleep(0.06)
        resp = client.get(f"/recommend/{KNOWN_USER}")
        assert resp.headers["X-Recommendation-Source"] == "personal"
        assert resp.headers["X-Model-Version"] == "v8"
    finally:
        server.stop()


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


def test_nothing_seen_and_no_fallback_is_a_quick_one_line_503(
    make_client: Callable[..., FlaskClient],
) -> None:
    client = make_client(redis_url=unreachable_url())
    started = time.monotonic()
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert time.monotonic() - started < 0.25
    assert assert_one_line_text(resp, 503).startswith("no recommendations available: redis error")


def test_no_active_version_uses_fallback_or_503(
    redis_url: str, fallback_file: tuple[Path, str], make_client: Callable[..., FlaskClient]
) -> None:
    text = assert_one_line_text(make_client(redis_url=redis_url).get("/recommend/1"), 503)
    assert rediskeys.ACTIVE in text
    path, body = fallback_file
    resp = make_client(redis_url=redis_url, fallback_path=path).get("/recommend/1")
    assert resp.status_code == 200
    assert resp.data == body.encode()


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


def test_malformed_fallback_file_is_ignored(
    tmp_path: Path, make_client: Callable[..., FlaskClient]
) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("a+2001,a+2001\n", encoding="utf-8")  # duplicate IDs break the contract
    client = make_client(redis_url=unreachable_url(), fallback_path=path)
    assert_one_line_text(client.get("/recommend/1"), 503)
    missing = make_client(redis_url=unreachable_url(), fallback_path=tmp_path / "missing")
    assert_one_line_text(missing.get("/recommend/1"), 503)


def test_hung_redis_costs_one_timeout_even_under_concurrency(
    hung_redis: str, fallback_file: tuple[Path, str]
) -> None:
    """Concurrent first requests must not queue behind each other's timeouts."""
    path, body = fallback_file
    store = RecommendationStore.from_settings(
        Settings(redis_url=hung_redis, redis_timeout_ms=100, fallback_path=path)
    )

    def timed(userid: int) -> tuple[float, Answer | Unavailable]:
        started = time.monotonic()
        answer = store.recommend(userid)
        return time.monotonic() - started, answer

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(timed, range(1, 9)))
    finally:
        store.close()
    assert all(isinstance(a, Answer) and a.body == body.encode() for _, a in results)
    assert max(elapsed for elapsed, _ in results) < 0.35  # 8 stacked timeouts would be 0.8 s


# --- settings, packaging ------------------------------------------------------------------


def test_settings_defaults_are_the_documented_ones() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"REDIS_URL": "", "FALLBACK_PATH": " "}) == Settings()
    s = Settings()
    assert (s.redis_url, s.redis_timeout_ms, s.version_refresh_seconds) == (
        "redis://127.0.0.1:6379/0",
        50,
        1.0,
    )
    assert (s.fallback_path, s.bind, s.web_concurrency, s.gunicorn_threads) == (
        None,
        "127.0.0.1:8082",
        2,
        4,
    )
    doc = settings.__doc__ or ""
    for name, default in [
        ("REDIS_URL", s.redis_url),
        ("REDIS_TIMEOUT_MS", "50"),
        ("VERSION_REFRESH_SECONDS", "1.0"),
        ("FALLBACK_PATH", "(unset)"),
        ("SERVICE_BIND", s.bind),
        ("WEB_CONCURRENCY", "2"),
        ("GUNICORN_THREADS", "4"),
    ]:
        line = next(line for line in doc.splitlines() if line.split()[:1] == [name])
        assert line.split()[1] == default


def test_settings_from_env_parses_and_rejects() -> None:
    env = {
        "REDIS_URL": "redis://10.0.0.5:6380/2",
        "REDIS_TIMEOUT_MS": "30",
        "VERSION_REFRESH_SECONDS": "0.25",
        "FALLBACK_PATH": "/srv/fallback.txt",
        "SERVICE_BIND": "0.0.0.0:8082",
        "WEB_CONCURRENCY": "3",
        "GUNICORN_THREADS": "8",
    }
    assert Settings.from_env(env) == Settings(
        "redis://10.0.0.5:6380/2", 30, 0.25, Path("/srv/fallback.txt"), "0.0.0.0:8082", 3, 8
    )
    for name, value in [
        ("REDIS_TIMEOUT_MS", "0"),
        ("REDIS_TIMEOUT_MS", "fast"),
        ("VERSION_REFRESH_SECONDS", "-1"),
        ("WEB_CONCURRENCY", "2.5"),
        ("REDIS_URL", "localhost:6379"),
        ("SERVICE_BIND", "8082"),
    ]:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})


SERVICE_MODULES = ["settings", "store", "routes", "app", "__main__", "rediskeys", "response"]
LEAN = {"flask", "werkzeug", "gunicorn", "redis", "prometheus_client", "service", "__future__"}


@pytest.mark.parametrize("module", [*SERVICE_MODULES, "gunicorn.conf"])
def test_service_modules_import_only_the_lean_set(module: str) -> None:
    """The image holds flask (werkzeug is its part), gunicorn, redis and prometheus_client."""
    tree = ast.parse((ROOT / "service" / f"{module}.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            imported.add(node.module.split(".")[0])
    assert imported  # the walk found the imports at all
    assert imported - LEAN - set(sys.stdlib_module_names) == set()


def test_importing_the_service_pulls_in_no_pipeline_package() -> None:
    """And precompute can import ``service.rediskeys`` without Flask or redis."""
    code = """
import json, sys
import service.rediskeys, service.response
light = sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'redis', 'werkzeug'})
import service.app, service.routes, service.store, service.settings, service.__main__
print(json.dumps({'light': light, 'top': sorted({m.split('.')[0] for m in sys.modules})}))
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
    for name in ("REDIS_URL", "REDIS_TIMEOUT_MS", "VERSION_REFRESH_SECONDS", "FALLBACK_PATH"):
        assert name in out.stdout
    for name in ("SERVICE_BIND", "WEB_CONCURRENCY", "GUNICORN_THREADS"):
        assert name in out.stdout


# --- real gunicorn ------------------------------------------------------------------------


def test_python_m_service_serves_under_gunicorn(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    bodies = publish(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    port = free_port()
    env = {
        **os.environ,
        "SERVICE_BIND": f"{LOOPBACK}:{port}",
        "REDIS_URL": redis_url,
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
    }
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    base = f"http://{LOOPBACK}:{port}"
    try:
        wait_for_port(port, timeout=30)
        with requests.Session() as http:
            known = http.get(f"{base}/recommend/{KNOWN_USER}", timeout=5)
            assert known.status_code == 200
            assert known.headers["Content-Type"] == response.CONTENT_TYPE
            assert known.content == bodies[KNOWN_USER].encode("utf-8")
            assert known.headers["X-Recommendation-Source"] == "personal"
            assert known.headers["X-Model-Version"] == "v1"

            unknown = http.get(f"{base}/recommend/{UNKNOWN_USER}", timeout=5)
            assert unknown.status_code == 200
            assert unknown.content == response.format_body(movies("popular")).encode()
            assert unknown.headers["X-Recommendation-Source"] == "cold_start"

            bad = http.get(f"{base}/recommend/01", timeout=5)
            assert bad.status_code == 400
            assert bad.text == BAD_ID_REASON

            health = http.get(f"{base}/healthz", timeout=5)
            assert (health.status_code, health.text) == (200, "ok")

        deadline = time.monotonic() + 15
        while log_path.read_text().count("Booting worker") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            returncode = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    log_text = log_path.read_text()
    assert returncode == 0, log_text
    assert "Using worker: gthread" in log_text
    assert log_text.count("Booting worker") == 2
    assert "GET /recommend" not in log_text  # no access log
    assert "Traceback" not in log_text
    assert "Control socket" not in log_text


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
