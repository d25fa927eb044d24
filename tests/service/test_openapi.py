"""The real gunicorn against its own ``/openapi.json``: schemathesis generates valid and
invalid requests for every operation and runs all of its checks (no server errors, status
codes, content types, headers and bodies as documented, invalid input rejected, valid input
accepted, other methods answered 405).

One gunicorn serves the whole module, on the session's Redis with one published version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from devstack.servers import LOOPBACK, Server
from service.openapi import DOCUMENT

KNOWN_USER = 220358


@pytest.fixture(scope="module")
def service(
    redis_proc: Server,
    tmp_path_factory: pytest.TempPathFactory,
    publish_lists: Callable[..., dict[int, str]],
    movies: Callable[..., list[str]],
    gunicorn: Callable[..., Any],
) -> Iterator[Any]:
    url = f"redis://{LOOPBACK}:{redis_proc.port}/0"
    client = redis.Redis.from_url(url)
    client.flushall()
    publish_lists(client, "v1", {u: movies(f"u{u}") for u in (1, 2, 3, KNOWN_USER)}, movies("pop"))
    client.close()
    service = gunicorn(
        {"REDIS_URL": url, "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4", "REQUEST_LOG": "off"},
        tmp_path_factory.mktemp("openapi"),
    ).start()
    yield service
    assert service.stop() == 0
    assert "Traceback" not in Path(service.stderr).read_text()


# Loaded from the module (the same object the service serializes; the last test checks that
# the served document is identical), because schemathesis' lazy fixture loader does not work
# with this pytest; each call goes to the module's gunicorn.
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_service_conforms_to_its_openapi_document(
    case: schemathesis.Case, service: Any
) -> None:
    case.call_and_validate(base_url=service.base)


def test_the_document_covers_every_route(service: Any) -> None:
    served = requests.get(f"{service.base}/openapi.json", timeout=5).json()
    assert served == DOCUMENT
    assert set(served["paths"]) == {
        "/recommend/{userid}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    }
    responses = served["paths"]["/recommend/{userid}"]["get"]["responses"]
    assert set(responses) == {"200", "400", "404"}
    assert set(responses["200"]["content"]) == {"text/plain", "application/json"}
