"""``python -m service`` (``service.__main__``): serving under a real gunicorn with the
plain-error worker, and checking its configuration without serving."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests

from contracts import response
from contracts.userid import BAD_USER_ID
from service.worker import TOO_LONG

KNOWN_USER = 220358
UNKNOWN_USER = 999_999


def test_python_m_service_serves_under_gunicorn(service: Any) -> None:
    bodies = service.publish("v1", {KNOWN_USER: "known"}, "popular")
    served = service.gunicorn({"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2"})
    try:
        with requests.Session() as http:
            known = http.get(f"{served.base}/recommend/{KNOWN_USER}", timeout=5)
            assert known.status_code == 200
            assert known.headers["Content-Type"] == response.CONTENT_TYPE
            assert known.content == bodies[KNOWN_USER].encode("utf-8")
            assert known.headers["X-Recommendation-Source"] == "personal"
            assert known.headers["X-Model-Version"] == "v1"
            assert known.headers["X-AB-Variant"] == "control"

            as_json = http.get(
                f"{served.base}/recommend/{KNOWN_USER}",
                headers={"Accept": "application/json"},
                timeout=5,
            )
            assert as_json.json()["movies"] == service.movies("known")

            unknown = http.get(f"{served.base}/recommend/{UNKNOWN_USER}", timeout=5)
            assert unknown.status_code == 200
            assert unknown.content == response.format_body(service.movies("popular")).encode()
            assert unknown.headers["X-Recommendation-Source"] == "cold_start"

            bad = http.get(f"{served.base}/recommend/01", timeout=5)
            assert bad.status_code == 400
            assert bad.text == BAD_USER_ID
            # Past gunicorn's request-line limit the app never sees it: still a one-line 400,
            # not gunicorn's HTML 414 page.
            huge = http.get(f"{served.base}/recommend/{'9' * 5000}", timeout=5)
            assert huge.status_code == 400
            assert huge.headers["Content-Type"] == response.CONTENT_TYPE
            assert huge.content == TOO_LONG and b"\n" not in huge.content

            health = http.get(f"{served.base}/healthz", timeout=5)
            assert (health.status_code, health.text) == (200, "ok")
            ready = http.get(f"{served.base}/readyz", timeout=5)
            assert (ready.status_code, ready.text) == (200, "ready: active version v1")
            spec = http.get(f"{served.base}/openapi.json", timeout=5)
            assert spec.json()["paths"]["/recommend/{userid}"]["get"]["operationId"]

        deadline = time.monotonic() + 15
        while served.stderr.read_text().count("Booting worker") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        returncode = served.stop()
    log_text = served.stderr.read_text()
    assert returncode == 0, log_text
    assert "Using worker: service.worker.PlainErrorThreadWorker" in log_text
    assert log_text.count("Booting worker") == 2
    assert "Traceback" not in log_text
    assert "Control socket" not in log_text
    lines = [json.loads(line) for line in served.stdout.read_text().splitlines()]
    assert [line["user"] for line in lines] == [KNOWN_USER, KNOWN_USER, UNKNOWN_USER, None]
    assert "GET /recommend" not in served.stdout.read_text()  # no access log


def test_main_checks_config_and_rejects_bad_variables(
    unreachable_url: str, run_module: Callable[..., Any]
) -> None:
    """``--check-config`` loads gunicorn.conf.py and the app factory without serving."""
    env = {"REDIS_URL": unreachable_url}
    ok = run_module(["-m", "service", "--check-config"], env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    bad = run_module(["-m", "service"], {**env, "WEB_CONCURRENCY": "zero"}, timeout=60)
    assert bad.returncode != 0
    assert "WEB_CONCURRENCY" in bad.stderr
    assert "Traceback" not in bad.stderr
