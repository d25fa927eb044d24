"""``GET /docs``: Swagger UI over the service's own OpenAPI document, from the pinned
swagger-ui-bundle package, served by the service itself (no CDN: it works offline).

The page is opened in headless Chromium (Debian's ``chromium``, installed by
scripts/ci-deps.sh when missing, as the Makefile does) against a real gunicorn: it must list
every operation of the document, and trying ``/recommend/{userid}`` from it must show the
published list, with every request the browser made going to the service.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from devstack.docs_screenshot import OPERATION, visit_docs
from service.docs import ASSETS
from service.openapi import DOCUMENT

ROOT = Path(__file__).resolve().parents[2]
KNOWN_USER = 220358
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chromium() -> None:
    """Debian's chromium, installed if missing, exactly as `make test` does."""
    subprocess.run([str(ROOT / "scripts" / "ci-deps.sh"), "chromium=chromium"], check=True)


def test_the_page_and_its_assets_come_from_the_service(
    make_client: Callable[..., FlaskClient],
) -> None:
    client = make_client()
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.content_type == "text/html; charset=utf-8"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    linked = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    assert linked == {f"docs/{name}" for name in ASSETS}
    types = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
    for url in linked:
        asset = client.get(f"/{url}")
        assert asset.status_code == 200, url
        assert asset.content_type.startswith(types[Path(url).suffix]), url
        assert len(asset.data) > 500, url
    assert "openapi.json" in html  # the document it shows is the service's own
    for missing in ("/docs/index.html", "/docs/swagger-initializer.js", "/docs/", "/docs/x.js"):
        answer = client.get(missing)
        assert answer.status_code == 404, missing
        assert answer.content_type.startswith("text/plain")
    assert client.post("/docs").status_code == 405


def test_swagger_ui_renders_and_tries_the_recommend_operation_in_chromium(
    chromium: None,
    redis_client: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    gunicorn: Any,
    publish_lists: Callable[..., dict[int, str]],
    movies: Callable[..., list[str]],
) -> None:
    bodies = publish_lists(redis_client, "v1", {KNOWN_USER: movies("known")}, movies("popular"))
    service = gunicorn({"REDIS_URL": redis_url, "REQUEST_LOG": "off"}, tmp_path / "service")
    service.start()
    shot = tmp_path / "docs.png"
    try:
        visit = visit_docs(service.base, KNOWN_USER, profile=tmp_path / "chromium", out=shot)
    finally:
        assert service.stop() == 0
    assert OPERATION in visit.operations
    assert sorted(visit.operations) == sorted(DOCUMENT["paths"])
    assert visit.answer == bodies[KNOWN_USER]  # what "Execute" showed: the published list
    fetched = [url for url in visit.requested if not url.startswith("data:")]  # inline images
    assert [url for url in fetched if not url.startswith(f"{service.base}/")] == []
    assert {f"{service.base}/docs", f"{service.base}/openapi.json"} <= set(fetched)
    assert shot.read_bytes().startswith(PNG_SIGNATURE)
    assert "Traceback" not in service.stderr.read_text()
