"""The job's outputs (``online.online_report``): metrics.json, the Prometheus text file,
report.md, and the push to a Pushgateway."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.servers import LOOPBACK, free_port
from online import evaluation, online_report


@dataclass
class Pushed:
    url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


@contextmanager
def pushgateway() -> Iterator[Pushed]:
    """An HTTP server that answers pushes as a Pushgateway does and keeps what was pushed."""
    seen = Pushed()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            seen.requests.append(("PUT", self.path))
            seen.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, free_port()), Handler)
    seen.url = f"http://{LOOPBACK}:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_outputs_prometheus_file_report_and_push(job: Any) -> None:
    job.simulate(days=3, seed=2)
    with pushgateway() as pushed:
        evaluation.run(job.settings(pushgateway_url=pushed.url, push_job="recsys_online"))
    out = job.data_dir / "online"
    document = json.loads((out / online_report.METRICS_JSON).read_text())
    families = {
        f.name: f
        for f in text_string_to_metric_families((out / online_report.PROMETHEUS_FILE).read_text())
    }
    for group in document["groups"]:
        labels = {"version": group["version"], "variant": group["variant"]}
        for column, (name, _) in online_report.GAUGES.items():
            samples = [s.value for s in families[name].samples if s.labels == labels]
            assert samples == ([] if group[column] is None else [pytest.approx(group[column])])
        latency = {
            s.labels["quantile"]: s.value
            for s in families["recsys_online_latency_ms"].samples
            if {k: s.labels[k] for k in labels} == labels
        }
        assert latency == {
            "0.5": pytest.approx(group["latency_p50_ms"]),
            "0.95": pytest.approx(group["latency_p95_ms"]),
            "0.99": pytest.approx(group["latency_p99_ms"]),
        }
    pending = families["recsys_online_pending_recommendations"].samples[0].value
    assert pending == document["pending"] > 0
    markdown = (out / online_report.REPORT_MD).read_text()
    for group in document["groups"]:
        assert f"| {group['version']} | {group['variant']} | {group['requests']} |" in markdown
    assert pushed.requests == [("PUT", "/metrics/job/recsys_online")]
    assert b"recsys_online_conversion_rate{" in pushed.bodies[0]
