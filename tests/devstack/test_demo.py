"""``make demo`` as a newcomer meets it: it serves, its terminal shows the hint and a compact
live line instead of one JSON line per request (those go to ``requests.log``), and however
it is stopped (Ctrl-C, a supervisor's SIGTERM, a closed terminal's SIGHUP) no process it
started survives and every port it listened on is free again."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable

import pytest
import requests

STOP_TIMEOUT = 45.0  # the service drains (up to 10 s), then the servers stop
QUICK_WORLD = ("--users", "200", "--movies", "100", "--days", "5")

# How each signal reaches the demo: Ctrl-C and a terminal's hang-up go to its whole process
# group; a supervisor's (or `timeout`'s, or `kill`'s) SIGTERM to the demo process alone.
SIGNALS = [
    pytest.param(signal.SIGINT, True, id="SIGINT-to-group"),
    pytest.param(signal.SIGTERM, False, id="SIGTERM-to-demo"),
    pytest.param(signal.SIGHUP, True, id="SIGHUP-to-group"),
]


@pytest.mark.parametrize(("sig", "group"), SIGNALS)
def test_demo_serves_quietly_and_stops_everything_it_started(
    sig: signal.Signals,
    group: bool,
    demo: Callable[..., object],
    survivors: Callable[[dict[int, str]], dict[int, str]],
    listening_ports: Callable[[set[int]], set[int]],
    port_free: Callable[[int], bool],
) -> None:
    running = demo()
    hint = running.wait_for_output(r"try:\s+curl (http://\S+/recommend/(\d+))", 5)
    user = int(hint.group(2))
    with requests.Session() as http:
        answers = [http.get(hint.group(1), timeout=5) for _ in range(30)]
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["X-Recommendation-Source"] for a in answers} == {"personal"}
    live = running.wait_for_output(r"live: ([\d,]+) requests .*p99 [\d.]+ ms\s+personal 100%", 10)
    assert int(live.group(1).replace(",", "")) == 30

    # The request log went to its file, not to the terminal.
    logged = [json.loads(line) for line in (running.data_dir / "requests.log").open()]
    assert [line["user"] for line in logged] == [user] * 30
    assert '"latency_ms"' not in running.output()

    tree = running.tree()
    ports = listening_ports(set(tree))
    assert running.port in ports
    assert len(ports) >= 3, ports  # the service, Redis and the broker at least
    running.signal(sig, group=group)
    assert running.process.wait(timeout=STOP_TIMEOUT) == 0  # a stop is how a demo ends
    assert survivors(tree, str(running.data_dir)) == {}
    assert [port for port in sorted(ports) if not port_free(port)] == []
    output = running.output()
    assert re.search(r"==> stopping refresher, service, kafka, redis", output)
    assert "Traceback" not in output
    assert "SIGKILL" not in output  # no gunicorn worker had to be killed


def test_airflow_stops_everything_it_started_on_sigterm(
    launch: Callable[..., object],
    survivors: Callable[..., dict[int, str]],
) -> None:
    """``make airflow``, stopped by a supervisor once ``airflow standalone`` has been starting
    for a while (its scheduler, API server, DAG processor and triggerer up or coming up;
    on a fast machine it may already serve): all of it goes."""
    running = launch(
        "airflow", *QUICK_WORLD, "--manual-only", ready=r"==> starting airflow standalone"
    )
    time.sleep(10)  # standalone starts its components meanwhile
    tree = running.tree()
    assert len(tree) >= 4, tree  # this, Redis, the broker, standalone and what it started
    running.signal(signal.SIGTERM, group=False)
    # 0: stopped while serving, the normal end; 143: stopped while still starting.
    assert running.process.wait(timeout=STOP_TIMEOUT) in {0, 128 + signal.SIGTERM}
    assert survivors(tree, str(running.data_dir)) == {}
    assert "Traceback" not in running.output()


def test_experiment_demo_stops_everything_it_started_on_sighup(
    launch: Callable[..., object],
    survivors: Callable[..., dict[int, str]],
    listening_ports: Callable[[set[int]], set[int]],
    port_free: Callable[[int], bool],
) -> None:
    """``make experiment-demo`` in the middle of its first experiment (service, consumer and
    simulated app users running) when its terminal is closed."""
    running = launch(
        "experiment",
        *QUICK_WORLD,
        *("--visits", "100", "--rounds", "3"),
        ready=r"==> experiment neural-vs-random-fixed",
    )
    time.sleep(2)
    tree = running.tree()
    ports = listening_ports(set(tree))
    assert running.port in ports
    running.signal(signal.SIGHUP, group=True)
    assert running.process.wait(timeout=STOP_TIMEOUT) == 128 + signal.SIGHUP
    assert survivors(tree, str(running.data_dir)) == {}
    assert [port for port in sorted(ports) if not port_free(port)] == []
