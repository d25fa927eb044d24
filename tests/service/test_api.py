"""The HTTP surface of the lookup service (``service.api``, ``service.ops`` and the app's
error handling in ``service.app``) through Flask's test client, against a real Redis populated
exactly as precompute publishes (``contracts.rediskeys`` keys, bodies from
``contracts.response.format_body``), so these tests pin the contract between the two.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from werkzeug.test import TestResponse

from contracts import response
from contracts.userid import BAD_USER_ID
from service.api import STORE_KEY
from service.app import create_app
from service.lookup import Answer, RecommendationStore, load_fallback
from service.requestlog import RequestLog
from service.settings import SHIPPED_FALLBACK

KNOWN_USER = 220358
OTHER_USER = 227244
UNKNOWN_USER = 999_999


def assert_one_line_text(resp: TestResponse, status: int) -> str:
    assert resp.status_code == status
    assert resp.content_type == response.CONTENT_TYPE
    text = resp.get_data(as_text=True)
    assert text
    assert "\n" not in text
    assert "<html" not in text.lower()  # not an HTML error page
    return text


# --- answers ----------------------------------------------------------------------------


def test_known_user_gets_the_stored_body_byte_for_byte(service: Any) -> None:
    bodies = service.publish("v1", {KNOWN_USER: "known", OTHER_USER: "other"}, "popular")
    client = service.client()

    resp = client.get(f"/recommend/{KNOWN_USER}")

    assert resp.status_code == 200
    assert resp.content_type == "text/plain; charset=utf-8"
    assert resp.data == bodies[KNOWN_USER].encode("utf-8")
    service.assert_contract_body(resp.data)
    assert resp.headers["X-Model-Version"] == "v1"
    assert resp.headers["X-AB-Variant"] == "control"
    assert resp.headers["X-Recommendation-Source"] == "personal"
    other = client.get(f"/recommend/{OTHER_USER}")
    assert other.data == bodies[OTHER_USER].encode("utf-8")


def test_unknown_user_gets_the_cold_start_list_and_is_counted(service: Any) -> None:
    service.publish("v1", {KNOWN_USER: "known"}, "popular")
    client = service.client()
    before = service.counter("recsys_service_cold_start_answers_total")

    for userid in (UNKNOWN_USER, 2**63 - 1):
        resp = client.get(f"/recommend/{userid}")
        assert resp.status_code == 200
        assert resp.content_type == response.CONTENT_TYPE
        assert resp.data == response.format_body(service.movies("popular")).encode("utf-8")
        assert resp.headers["X-Model-Version"] == "v1"
        assert resp.headers["X-Recommendation-Source"] == "cold_start"
    assert service.counter("recsys_service_cold_start_answers_total") - before == 2


@pytest.mark.parametrize(
    "accept",
    ["application/json", "application/json, text/plain;q=0.5", "text/*;q=0.1, application/*"],
)
def test_accept_json_gets_the_same_list_as_json(accept: str, service: Any) -> None:
    service.publish("v1", {KNOWN_USER: "known"}, "popular")
    resp = service.client().get(f"/recommend/{KNOWN_USER}", headers={"Accept": accept})
    assert resp.status_code == 200
    assert resp.content_type == "application/json"
    assert resp.headers["Vary"] == "Accept"
    assert resp.headers["X-Model-Version"] == "v1"
    assert json.loads(resp.data) == {
        "user": KNOWN_USER,
        "movies": service.movies("known"),
        "version": "v1",
        "variant": "control",
        "source": "personal",
    }


@pytest.mark.parametrize(
    "accept", [None, "*/*", "text/plain", "text/html", "application/json;q=0.1, text/plain"]
)
def test_anything_but_a_json_preference_gets_the_contract_text(
    accept: str | None, service: Any
) -> None:
    bodies = service.publish("v1", {KNOWN_USER: "known"}, "popular")
    headers = {"Accept": accept} if accept else {}
    resp = service.client().get(f"/recommend/{KNOWN_USER}", headers=headers)
    assert resp.status_code == 200
    assert resp.content_type == response.CONTENT_TYPE
    assert resp.data == bodies[KNOWN_USER].encode()


# --- errors -----------------------------------------------------------------------------


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
def test_bad_userid_is_a_one_line_400(userid: str, service: Any) -> None:
    resp = service.client().get(f"/recommend/{userid}")
    assert assert_one_line_text(resp, 400) == BAD_USER_ID


def test_healthz_answers_without_redis(service: Any, unreachable_url: str) -> None:
    resp = service.client(redis_url=unreachable_url).get("/healthz")
    assert assert_one_line_text(resp, 200) == "ok"


def test_readyz_needs_redis_and_an_active_version(service: Any, unreachable_url: str) -> None:
    assert "redis unreachable" in assert_one_line_text(
        service.client(redis_url=unreachable_url).get("/readyz"), 503
    )
    client = service.client()
    assert "no active version" in assert_one_line_text(client.get("/readyz"), 503)
    service.publish("v1", {}, "popular")
    assert assert_one_line_text(client.get("/readyz"), 200) == "ready: active version v1"


@pytest.mark.parametrize("path", ["/nope", "/recommend/", "/recommend/1/2", "/recommend/1/"])
def test_unknown_path_is_a_plain_404(path: str, service: Any) -> None:
    assert "not found" in assert_one_line_text(service.client().get(path), 404)


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_other_methods_are_a_plain_405_with_allow(method: str, service: Any) -> None:
    resp = getattr(service.client(), method)(f"/recommend/{KNOWN_USER}")
    assert "method not allowed" in assert_one_line_text(resp, 405)
    assert "GET" in resp.headers["Allow"]


class BrokenStore(RecommendationStore):
    """Stands in for a bug below the route: the app must still answer one line of text."""

    def recommend(self, user_id: int) -> Answer:
        raise RuntimeError(f"bug\nfor {user_id}")


def test_a_bug_is_a_plain_500_not_a_traceback(unreachable_url: str) -> None:
    store = BrokenStore(
        lambda: redis.Redis.from_url(unreachable_url), load_fallback(SHIPPED_FALLBACK)
    )
    app = create_app(store=store, request_log=RequestLog())
    assert app.extensions[STORE_KEY] is store
    resp = app.test_client().get(f"/recommend/{KNOWN_USER}")
    assert assert_one_line_text(resp, 500) == "internal server error"
    store.close()
