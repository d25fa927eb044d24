"""The fallback list (``service.fallback``): the file named by FALLBACK_PATH or the one
shipped with the image answers when Redis cannot, and an unusable one stops the service at
startup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.app import create_app
from service.fallback import FILE_VERSION, FallbackError
from service.lookup import load_fallback
from service.settings import SHIPPED_FALLBACK, Settings

ROOT = Path(__file__).resolve().parents[2]
KNOWN_USER = 220358


def test_unreachable_redis_with_fallback_file_answers_200_from_the_file(
    fallback_file: tuple[Path, str], make_client: Callable[..., FlaskClient], unreachable_url: str
) -> None:
    path, body = fallback_file
    client = make_client(redis_url=unreachable_url, fallback_path=path)
    started = time.monotonic()
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert time.monotonic() - started < 0.25
    assert resp.status_code == 200
    assert resp.data == body.encode()
    assert resp.headers["X-Model-Version"] == FILE_VERSION
    assert resp.headers["X-Recommendation-Source"] == "fallback"


def test_cold_start_without_redis_serves_the_list_shipped_with_the_image(
    make_client: Callable[..., FlaskClient],
    assert_contract_body: Callable[[bytes], list[str]],
    unreachable_url: str,
    shipped_body: bytes,
) -> None:
    client = make_client(redis_url=unreachable_url)  # FALLBACK_PATH left at its default
    resp = client.get(f"/recommend/{KNOWN_USER}")
    assert resp.status_code == 200
    assert resp.data == shipped_body
    assert_contract_body(resp.data)
    assert resp.headers["X-Model-Version"] == FILE_VERSION


def test_the_shipped_list_is_in_the_image(
    assert_contract_body: Callable[[bytes], list[str]], shipped_body: bytes
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY service/ service/" in dockerfile
    assert SHIPPED_FALLBACK.parent == ROOT / "service"
    assert_contract_body(shipped_body)


def test_no_active_version_answers_from_the_fallback(
    redis_url: str,
    fallback_file: tuple[Path, str],
    make_client: Callable[..., FlaskClient],
    counter: Callable[..., float],
    shipped_body: bytes,
) -> None:
    before = counter("recsys_service_fallbacks_total", cause="no_active_version")
    resp = make_client(redis_url=redis_url).get("/recommend/1")
    assert resp.status_code == 200
    assert resp.data == shipped_body
    path, body = fallback_file
    resp = make_client(redis_url=redis_url, fallback_path=path).get("/recommend/1")
    assert resp.status_code == 200
    assert resp.data == body.encode()
    assert counter("recsys_service_fallbacks_total", cause="no_active_version") - before == 2


@pytest.mark.parametrize(
    "content", ["a+2001,a+2001\n", "", "a+2001,b+2002\n", "a+2001,,b+2002\n", b"\xff\xfe"]
)
def test_unusable_fallback_file_stops_the_service_at_startup(
    content: str | bytes, tmp_path: Path, unreachable_url: str
) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(FallbackError, match="FALLBACK_PATH"):
        create_app(Settings(redis_url=unreachable_url, fallback_path=path))
    with pytest.raises(FallbackError, match="unusable"):
        load_fallback(tmp_path / "missing.txt")


def test_main_refuses_to_start_with_an_unusable_fallback(
    tmp_path: Path, run_module: Callable[..., Any]
) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("only+one+1999\n")
    out = run_module(["-m", "service"], {"FALLBACK_PATH": str(path)}, timeout=60)
    assert out.returncode != 0
    assert "FALLBACK_PATH" in out.stderr
    assert "Traceback" not in out.stderr
