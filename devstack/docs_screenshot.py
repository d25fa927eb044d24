"""``make docs-screenshot``: docs/api-docs.png, the service's API page (``GET /docs``, Swagger
UI) in headless Chromium, with ``/recommend/{userid}`` tried out.

Starts Redis on a free loopback port, publishes a small simulated world's lists through
precompute's own write protocol, runs the service (``python -m service``: gunicorn) on a free
port, and drives Debian's ``chromium`` over the DevTools protocol (the helpers of
``devstack.airflow_screenshot``): it opens ``/docs``, expands the operation, presses "Try it
out", enters a user, presses "Execute", waits for the answer and captures the page.
``visit_docs`` is also what tests/service/test_docs.py runs against its own gunicorn.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devstack import lifecycle
from devstack.airflow_screenshot import browser_page
from devstack.servers import LOOPBACK, Server, free_port, redis_server

REPO = Path(__file__).resolve().parent.parent
VIEWPORT = (1200, 1340)  # CSS pixels: the operation list, one operation open with its answer
OPERATION = "/recommend/{userid}"
DRAW_TIMEOUT = 60.0


@dataclass
class DocsVisit:
    """What the page showed and fetched."""

    operations: list[str]  # the paths it lists, in order
    answer: str  # the response body it shows after "Execute"
    requested: list[str] = field(default_factory=list)  # every URL the browser asked for


def _js(text: str) -> str:
    """A JavaScript string literal (JSON's rules are JavaScript's)."""
    import json

    return json.dumps(text)


def visit_docs(base: str, user: int, *, profile: Path, out: Path | None = None) -> DocsVisit:
    """Open ``base``/docs in headless Chromium, try ``/recommend/{userid}`` for ``user``,
    and return what the page showed; with ``out``, also save the page there as a PNG.
    ``profile``: a fresh directory for the browser."""
    requested: list[str] = []

    def record(event: dict) -> None:
        if event["method"] == "Network.requestWillBeSent":
            requested.append(event["params"]["request"]["url"])

    with browser_page(profile, VIEWPORT, on_event=record) as tools:
        tools.call("Network.enable")
        tools.call("Page.navigate", url=f"{base}/docs")
        summary = f'.opblock-summary-path[data-path="{OPERATION}"]'
        tools.wait_for(f"document.querySelector({_js(summary)})", DRAW_TIMEOUT)
        operations = tools.evaluate(
            "[...document.querySelectorAll('.opblock-summary-path')]"
            ".map(e => e.getAttribute('data-path'))"
        )
        block = "#operations-default-recommend"
        control = f"{block} .opblock-summary-control"
        tools.evaluate(f"document.querySelector({_js(control)}).click()")
        try_out = f"{block} .try-out__btn"
        tools.wait_for(f"document.querySelector({_js(try_out)})", DRAW_TIMEOUT)
        tools.evaluate(f"document.querySelector({_js(try_out)}).click()")
        field_ = f"{block} .parameters input"
        tools.wait_for(f"document.querySelector({_js(field_)})", DRAW_TIMEOUT)
        tools.evaluate(f"document.querySelector({_js(field_)}).focus()")
        tools.call("Input.insertText", text=str(user))  # typed, as React wants it
        tools.wait_for(f"document.querySelector({_js(field_)}).value === '{user}'")
        # The field reports its value after a pause in typing, or at once when left.
        tools.evaluate(f"document.querySelector({_js(field_)}).blur()")
        execute = f"{block} .execute"
        tools.wait_for(f"document.querySelector({_js(execute)})", DRAW_TIMEOUT)
        tools.evaluate(f"document.querySelector({_js(execute)}).click()")
        body = f"{block} .live-responses-table .response-col_description pre"
        tools.wait_for(
            f"document.querySelector({_js(body)}) && "
            f"document.querySelector({_js(body)}).innerText.length > 0",
            DRAW_TIMEOUT,
        )
        answer = tools.evaluate(f"document.querySelector({_js(body)}).innerText")
        if out is not None:
            tools.evaluate("window.scrollTo(0, 0)")
            shot = tools.call("Page.captureScreenshot", format="png")
            out.write_bytes(base64.b64decode(shot["data"]))
    return DocsVisit(operations, answer, requested)


def publish_world(redis_url: str, users: int, movies: int, seed: int) -> int:
    """A simulated world's lists (each user's 20 best movies by the world's own taste),
    published through precompute's write protocol; returns a user to try."""
    import numpy as np
    import redis

    from contracts import response
    from precompute import publish
    from precompute.shard import Shard
    from simulator.traffic import World

    world = World.build(users, movies, seed)
    scores = world.tastes @ world.movie_vectors.T
    top = np.argsort(-scores, axis=1)[:, : response.LIST_LENGTH]
    ids = world.movie_ids
    bodies = [
        (int(user), response.format_body([ids[i] for i in row]))
        for user, row in zip(world.user_ids, top, strict=True)
    ]
    popular = response.format_body(ids[: response.LIST_LENGTH])
    client = redis.Redis.from_url(redis_url)
    try:
        meta = {"model_version": "docs-screenshot", "snapshot_id": "simulated"}
        version = publish.begin(client, meta=meta, default_body=popular, users=len(bodies))
        publish.write_shard(
            client,
            version,
            Shard(0, 1),
            publish.in_blocks(bodies),
            expected=len(bodies),
            model_version=meta["model_version"],
        )
        publish.finalize(client, version)
    finally:
        client.close()
    return bodies[len(bodies) // 2][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.docs_screenshot", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "api-docs.png")
    parser.add_argument("--data-dir", type=Path, default=REPO / "var" / "docs-screenshot")
    args = parser.parse_args(argv)

    data_dir = args.data_dir.resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    servers: list[Server] = []
    try:
        redis = redis_server(free_port(), data_dir / "redis").start()
        servers.append(redis)
        redis_url = f"redis://{LOOPBACK}:{redis.port}/0"
        user = publish_world(redis_url, users=300, movies=400, seed=7)
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "SERVICE_BIND": f"{LOOPBACK}:{port}",
            "REQUEST_LOG": "off",
            "PYTHONPATH": str(REPO),
        }
        service = Server(
            "service", [sys.executable, "-m", "service"], port, data_dir / "service.log", env=env
        )
        servers.append(service.start(timeout=30))
        visit = visit_docs(
            f"http://{LOOPBACK}:{port}", user, profile=data_dir / "chromium", out=args.out
        )
    finally:
        for server in reversed(servers):
            server.stop()
    print(f"wrote {args.out}: {', '.join(visit.operations)}; /recommend/{user} -> {visit.answer}")
    return 0


if __name__ == "__main__":
    lifecycle.run_main(main)
