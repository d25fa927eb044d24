"""``make observe``: the demo watched by a real Prometheus (Debian's package) with the
production scrape config and alert rules. Its three targets, the service, the ingest
consumer and the refresher, are up, and the alert rules from monitoring/alerts.yml are
loaded and evaluated."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
import requests

from devstack.servers import LOOPBACK, free_port

JOBS = {"recsys-service", "recsys-ingest", "recsys-refresher"}  # monitoring/prometheus.yml's jobs
RULE_GROUPS = {"recsys-recording", "recsys-service"}  # some of monitoring/alerts.yml's groups
NEVER = "0001-01-01T00:00:00Z"  # Prometheus' lastEvaluation of a rule not evaluated yet


def poll(url: str, ready: Callable[[dict], bool], timeout: float) -> dict:
    """GET ``url`` (a Prometheus API call) until ``ready(data)``; returns the data."""
    deadline = time.monotonic() + timeout
    data: dict = {}
    while time.monotonic() < deadline:
        try:
            data = requests.get(url, timeout=5).json()["data"]
        except (requests.RequestException, ValueError, KeyError):
            data = {}
        if data and ready(data):
            return data
        time.sleep(0.5)
    pytest.fail(f"{url} not ready in {timeout:.0f}s: {data}")


def service_down(rules: dict) -> dict:
    """The RecsysServiceDown rule in a /api/v1/rules answer."""
    return next(
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule["name"] == "RecsysServiceDown"
    )


def test_prometheus_scrapes_the_demo_and_evaluates_the_alert_rules(
    debian_tool: Callable[[str, str], str],
    demo: Callable[..., object],
    survivors: Callable[..., dict[int, str]],
    port_free: Callable[[int], bool],
) -> None:
    debian_tool("prometheus", "prometheus")
    port = free_port()
    running = demo("--observe", "--prometheus-port", str(port))
    running.wait_for_output(rf"Prometheus:\s+http://{LOOPBACK}:{port}", 5)
    api = f"http://{LOOPBACK}:{port}/api/v1"
    tree = running.tree()
    try:
        targets = poll(
            f"{api}/targets",
            lambda d: (
                {t["labels"]["job"] for t in d["activeTargets"] if t["health"] == "up"} == JOBS
            ),
            timeout=30,
        )
        assert len(targets["activeTargets"]) == len(JOBS)
        # Every group evaluated, and RecsysServiceDown evaluated since the service was first
        # scraped: with the service up, it has nothing to say (before that first scrape,
        # `absent(up)` made it pending).
        rules = poll(
            f"{api}/rules",
            lambda d: (
                all(g["lastEvaluation"] != NEVER for g in d["groups"])
                and service_down(d)["state"] == "inactive"
            ),
            timeout=30,
        )
        groups = {group["name"]: group for group in rules["groups"]}
        assert set(groups) >= RULE_GROUPS
        evaluated = [rule for group in groups.values() for rule in group["rules"]]
        assert {rule["health"] for rule in evaluated} == {"ok"}
        assert {rule["type"] for rule in evaluated} == {"alerting", "recording"}
        up = requests.get(f"{api}/query", params={"query": "up"}, timeout=5).json()["data"]
        assert {(s["metric"]["job"], s["value"][1]) for s in up["result"]} == {
            (job, "1") for job in JOBS
        }
    finally:
        running.signal(signal.SIGTERM, group=False)
        assert running.process.wait(timeout=45) == 0
    assert survivors(tree, str(running.data_dir)) == {}
    assert port_free(port)
