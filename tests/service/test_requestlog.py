"""The request log (``service.requestlog``): one JSON line per recommendation request, and a
failing write counted, never raised."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from contracts import response
from service.app import create_app
from service.lookup import RecommendationStore
from service.requestlog import RequestLog
from service.settings import Settings

KNOWN_USER = 220358
UNKNOWN_USER = 999_999


def test_request_log_writes_one_json_line_per_request(service: Any) -> None:
    bodies = service.publish("v1", {KNOWN_USER: "known"}, "popular")
    read_end, write_end = os.pipe()
    store = RecommendationStore.from_settings(Settings(redis_url=service.url))
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
    assert unknown["result"] == response.format_body(service.movies("popular"))
    assert bad["result"] == ""
    assert "variant" not in bad
    for record in records:
        assert 0 <= record["latency_ms"] < 5000
        assert record["time"].endswith("Z")
        logged_at = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - logged_at).total_seconds()) < 60


def test_request_log_write_errors_are_counted_not_raised(service: Any) -> None:
    service.publish("v1", {KNOWN_USER: "known"}, "popular")
    read_end, write_end = os.pipe()
    os.close(read_end)  # writing now fails with EPIPE
    store = RecommendationStore.from_settings(Settings(redis_url=service.url))
    app = create_app(store=store, request_log=RequestLog(write_end))
    before = service.counter("recsys_service_request_log_dropped_total", cause="stdout_error")
    try:
        resp = app.test_client().get(f"/recommend/{KNOWN_USER}")
    finally:
        store.close()
        os.close(write_end)
    assert resp.status_code == 200
    assert service.counter("recsys_service_request_log_dropped_total", cause="stdout_error") > (
        before
    )
