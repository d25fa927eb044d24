"""``make airflow-screenshot``: docs/airflow-graph.png, one run of the DAG in Airflow's graph view.

Starts the local Airflow stack (``devstack.airflow``, quick world, scheduled runs off) on free
loopback ports, triggers one run through the REST API and waits for it to succeed, then drives
headless Chromium (Debian's ``chromium``) over the DevTools protocol:

- the UI is logged in the way its login page does it: the admin's JWT in the ``_token`` cookie;
- the graph view is chosen the way the UI's own toggle does: ``default_dag_view`` in
  localStorage (the UI opens runs in the grid view otherwise);
- the run's page is captured once every task's node is drawn, with the details panel folded
  away and the graph fitted to the page (the UI's own buttons).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from devstack import airflow_api
from devstack.airflow import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    DAG_ID,
    QUICK_ENV,
    QUICK_WORLD,
    REPO,
    running,
)
from devstack.servers import LOOPBACK, ServerError, free_port, wait_for_port

VIEWPORT = (1400, 640)  # CSS pixels; the DAG is one row, so a short page wastes less
SCALE = 2  # device pixels per CSS pixel: task names stay legible in the README
# The contract's flags for headless Chromium on these machines (no sandbox as root, no
# background traffic to hosts the network refuses); DevTools takes the picture, not --screenshot.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
]
RUN_TIMEOUT = 600.0
DRAW_TIMEOUT = 60.0
SETTLE_SECONDS = 1.5  # the graph animates to its new size after a click


class DevTools:
    """The least of the Chrome DevTools protocol over one page's websocket: a command, then
    its answer. Events that arrive meanwhile go to ``on_event`` if set, else are ignored."""

    def __init__(self, socket, on_event: Callable[[dict], None] | None = None):
        self.socket = socket
        self.next_id = 0
        self.on_event = on_event

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if "method" in message and self.on_event is not None:
                self.on_event(message)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")

    def wait_for(self, condition: str, timeout: float = DRAW_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(f"Boolean({condition})"):
                return
            time.sleep(0.25)
        raise RuntimeError(f"the page never satisfied {condition!r} within {timeout:.0f}s")

    def click(self, label: str) -> None:
        """Click the button with this aria-label, as a person would, and let the page settle."""
        self.wait_for(f"document.querySelector('button[aria-label=\"{label}\"]')")
        self.evaluate(f"document.querySelector('button[aria-label=\"{label}\"]').click()")
        time.sleep(SETTLE_SECONDS)


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise ServerError("chromium not found: apt-get install chromium (make does it)")
    return found


def page_websocket(port: int, timeout: float = 30.0) -> str:
    """The DevTools address of the browser's first page."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/json/list", timeout=5) as reply:
            pages = [t for t in json.load(reply) if t["type"] == "page"]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.2)
    raise ServerError(f"chromium opened no page in {timeout:.0f}s")


@contextlib.contextmanager
def browser_page(
    profile: Path,
    viewport: tuple[int, int],
    *,
    scale: float = 1,
    on_event: Callable[[dict], None] | None = None,
) -> Iterator[DevTools]:
    """Headless Chromium with a fresh ``profile`` directory, its page's DevTools with the
    ``viewport`` (CSS pixels, ``scale`` device pixels each) set; stopped on leaving."""
    from websockets.sync.client import connect

    port = free_port()
    shutil.rmtree(profile, ignore_errors=True)
    argv = [
        chromium_binary(),
        *(flag for flag in CHROMIUM_FLAGS if not flag.startswith("--window-size")),
        f"--window-size={viewport[0]},{viewport[1]}",
        f"--user-data-dir={profile}",
        f"--remote-debugging-port={port}",
        "about:blank",
    ]
    browser = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_port(port, timeout=30)
        with connect(page_websocket(port), max_size=None) as socket:
            tools = DevTools(socket, on_event=on_event)
            width, height = viewport
            tools.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=scale,
                mobile=False,
            )
            yield tools
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(browser.pid, signal.SIGTERM)
        browser.wait(timeout=30)


def capture(url: str, token: str, page: str, nodes: int, *, out: Path, profile: Path) -> None:
    """``page`` in the graph view, logged in with ``token``, details panel folded away, as a
    PNG once ``nodes`` task nodes are drawn. ``profile``: a fresh directory for the browser."""
    with browser_page(profile, VIEWPORT, scale=SCALE) as tools:
        tools.call("Network.setCookie", name="_token", value=token, url=f"{url}/")
        tools.call("Page.navigate", url=f"{url}/")
        tools.wait_for("document.readyState === 'complete'")
        tools.evaluate("localStorage.setItem('default_dag_view', JSON.stringify('graph'))")
        tools.call("Page.navigate", url=page)
        tools.wait_for(f"document.querySelectorAll('.react-flow__node').length >= {nodes}")
        tools.click("Collapse Details Panel")
        tools.click("Fit View")
        shot = tools.call("Page.captureScreenshot", format="png")
    out.write_bytes(base64.b64decode(shot["data"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.airflow_screenshot", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "airflow-graph.png")
    parser.add_argument("--data-dir", type=Path, default=REPO / "var" / "airflow-screenshot")
    args = parser.parse_args(argv)

    data_dir = args.data_dir.resolve()
    with running(data_dir, free_port(), QUICK_WORLD, scheduled=False, extra_env=QUICK_ENV) as stack:
        api = airflow_api.session(stack.url, ADMIN_USER, ADMIN_PASSWORD)
        run_id = airflow_api.trigger(api, stack.url, DAG_ID)
        state = airflow_api.wait_for_run(api, stack.url, DAG_ID, run_id, RUN_TIMEOUT)
        if state != "success":
            tasks = airflow_api.task_states(api, stack.url, DAG_ID, run_id)
            print(f"run {run_id} {state}: {tasks}; no screenshot", file=sys.stderr)
            return 1
        nodes = len(airflow_api.task_ids(api, stack.url, DAG_ID))
        token = api.headers["Authorization"].removeprefix("Bearer ")
        page = f"{stack.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"
        capture(stack.url, token, page, nodes, out=args.out, profile=data_dir / "chromium")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
