"""The service as it runs in production: ``python -m service`` (gunicorn, several workers)
against a real Redis, and a real Kafka-protocol broker for the request log.

* metrics are one view over every worker, dead ones' counts included;
* Redis stopped and restarted in the middle of a load run: every answer is still a 200
  with a valid list, and the service recovers by itself;
* the request log reaches Kafka, and an unreachable Kafka never slows a request.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from kafka import KafkaConsumer, TopicPartition

from devstack.servers import LOOPBACK, Server, free_port
from service.api import STORE_KEY
from service.app import create_app
from service.kafkasink import KafkaSink
from service.requestlog import RequestLog
from service.settings import Settings

KNOWN_USER = 220358
UNKNOWN_USER = 999_999
RECOMMEND_ROUTE = "/recommend/<userid>"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- metrics across workers --------------------------------------------------------------


def test_metrics_add_up_over_every_worker_dead_or_alive(service: Any) -> None:
    """Requests go to three workers; then every one of them is replaced (SIGTERM), and more
    requests go to the new ones. /metrics, from whichever worker answers, counts them all."""
    service.publish("v1", {KNOWN_USER: "known"}, "popular")
    served = service.gunicorn({"WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "2"})
    sample = service.sample
    sent: Counter = Counter()

    def send(round_: int) -> None:
        for i in range(30):  # a fresh connection each time, so the workers share them
            path = [f"/recommend/{KNOWN_USER}", f"/recommend/{UNKNOWN_USER}", "/recommend/x"][i % 3]
            resp = requests.get(served.base + path, timeout=5)
            sent[resp.status_code] += 1
            sent[("source", resp.headers.get("X-Recommendation-Source"))] += 1
        sent[("round", round_)] += 1

    try:
        wait_for(lambda: len(served.workers()) == 3, 15, "three workers")
        first = served.workers()
        send(1)
        for pid in first:  # graceful exit; the master forks a replacement for each
            os.kill(pid, signal.SIGTERM)
        wait_for(
            lambda: len(served.workers()) == 3 and not served.workers() & first,
            30,
            "three new workers",
        )
        send(2)
        samples = served.metrics()
        # The master made a fresh directory (no PROMETHEUS_MULTIPROC_DIR given) and said so.
        said = re.search(r"metrics directory: (\S+)", served.stderr.read_text())
        assert said, "gunicorn did not log its metrics directory"
        metrics_dir = Path(said.group(1))
        files = {p.name for p in metrics_dir.iterdir()}
    finally:
        assert served.stop() == 0
    assert not metrics_dir.exists()  # removed on exit, as it was made on start

    assert (
        sample(samples, "recsys_service_requests_total", route=RECOMMEND_ROUTE, status="200")
        == (sent[200])
    )
    assert (
        sample(samples, "recsys_service_requests_total", route=RECOMMEND_ROUTE, status="400")
        == (sent[400])
    )
    assert sent[200] == 40 and sent[400] == 20
    histogram_count = sample(
        samples, "recsys_service_request_duration_seconds_count", route=RECOMMEND_ROUTE
    )
    assert histogram_count == 60
    assert (
        sample(samples, "recsys_service_cold_start_answers_total") == sent[("source", "cold_start")]
    )
    info = sample(samples, "recsys_service_model_version_info", variant="control", version="v1")
    assert info == 1
    # The dead workers' counts are kept, their live-only gauges dropped by child_exit.
    for pid in first:
        assert f"counter_{pid}.db" in files
        assert f"gauge_livemax_{pid}.db" not in files
    log = served.stderr.read_text()
    assert "Traceback" not in log


# --- Redis outage under load ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    at: float
    status: int
    source: str | None
    version: str | None
    body: bytes


def hammer(base: str, users: list[int], stop: threading.Event, out: list[Reply]) -> None:
    """One keep-alive client: random users, as fast as the service answers, until stopped."""
    rng = random.Random()
    with requests.Session() as http:
        while not stop.is_set():
            user = rng.choice(users)
            try:
                resp = http.get(f"{base}/recommend/{user}", timeout=2)
            except requests.RequestException as exc:  # a refused/failed request counts too
                out.append(Reply(time.monotonic(), 0, type(exc).__name__, None, b""))
                continue
            out.append(
                Reply(
                    time.monotonic(),
                    resp.status_code,
                    resp.headers.get("X-Recommendation-Source"),
                    resp.headers.get("X-Model-Version"),
                    resp.content,
                )
            )


def test_redis_stopped_and_restarted_during_a_load_run_costs_no_answer(
    service: Any, private_redis: Server
) -> None:
    server = private_redis
    url = f"redis://{LOOPBACK}:{server.port}/0"
    users = list(range(1, 51))
    own = redis.Redis.from_url(url)
    service.publish("v1", {u: f"one{u}" for u in users}, "pop1", to=own)
    served = service.gunicorn(
        {
            "REDIS_URL": url,
            "WEB_CONCURRENCY": "2",
            "GUNICORN_THREADS": "4",
            "VERSION_REFRESH_SECONDS": "0.2",
            "REDIS_BREAKER_SECONDS": "0.2",
        },
        service.log_dir / "logs",
    )
    stop = threading.Event()
    replies: list[Reply] = []
    clients = [
        threading.Thread(target=hammer, args=(served.base, [*users, 999_999], stop, replies))
        for _ in range(4)
    ]
    try:
        for client in clients:
            client.start()
        time.sleep(1.0)
        stopped_at = time.monotonic()
        server.stop()  # SIGTERM: Redis closes every connection
        time.sleep(1.5)
        server.start()  # back, and empty (no persistence): precompute publishes again
        service.publish("v2", {u: f"two{u}" for u in users}, "pop2", to=own)
        restarted_at = time.monotonic()
        time.sleep(2.0)
        stop.set()
        for client in clients:
            client.join(timeout=10)
        samples = served.metrics()
    finally:
        stop.set()
        served.stop()
        own.close()

    assert len(replies) > 200, "the load run barely ran"
    assert Counter(r.status for r in replies) == Counter({200: len(replies)})
    for reply in replies:
        service.assert_contract_body(reply.body)
    before = [r for r in replies if r.at < stopped_at]
    # Margins: a request that read Redis just before the stop may finish a little later;
    # after the restart, the breaker's probe and the routing refresh take 0.2 s each.
    during = [r for r in replies if stopped_at + 0.3 < r.at < restarted_at]
    after = [r for r in replies if r.at > restarted_at + 1.0]
    assert {r.source for r in before} <= {"personal", "cold_start"}
    assert during, "no request was answered while Redis was down"
    assert {r.source for r in during} == {"fallback"}
    assert {r.version for r in during} <= {"v1", "fallback-file"}
    assert after, "no request was answered after Redis came back"
    assert {r.source for r in after} <= {"personal", "cold_start"}
    assert {r.version for r in after} == {"v2"}

    fallbacks = sum(
        service.sample(samples, "recsys_service_fallbacks_total", cause=cause)
        for cause in ("redis_error", "redis_skipped", "no_active_version")
    )
    assert fallbacks >= len(during)
    assert sum(v for (name, _), v in samples.items() if name.startswith("recsys_service_redis_e"))
    log = served.stderr.read_text()
    assert "answering from fallback" in log
    assert "redis answers again" in log
    assert "Traceback" not in log


# --- request log to Kafka ------------------------------------------------------------------


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def test_request_log_lines_reach_the_kafka_topic(service: Any, bootstrap: str, topic: str) -> None:
    bodies = service.publish("v1", {KNOWN_USER: "known"}, "popular")
    served = service.gunicorn(
        {"REQUEST_LOG_KAFKA_BOOTSTRAP": bootstrap, "REQUEST_LOG_KAFKA_TOPIC": topic}
    )
    users = [KNOWN_USER, UNKNOWN_USER] * 10
    try:
        with requests.Session() as http:
            for user in users:
                assert http.get(f"{served.base}/recommend/{user}", timeout=5).status_code == 200
        records = read_topic(bootstrap, topic, len(users))

        def all_acknowledged() -> bool:
            sent = service.sample(served.metrics(), "recsys_service_request_log_sent_total")
            return sent == len(users)

        wait_for(all_acknowledged, 10, "every line acknowledged by the broker")
    finally:
        assert served.stop() == 0
    lines = [json.loads(r.value) for r in records]
    assert sorted(line["user"] for line in lines) == sorted(users)
    assert {r.key for r in records} == {str(KNOWN_USER).encode(), str(UNKNOWN_USER).encode()}
    known = next(line for line in lines if line["user"] == KNOWN_USER)
    assert known["result"] == bodies[KNOWN_USER]
    assert known["status"] == 200
    stdout = [json.loads(line) for line in served.stdout.read_text().splitlines()]
    assert sorted(lines, key=json.dumps) == sorted(stdout, key=json.dumps)  # the same lines


def test_unreachable_kafka_never_slows_or_fails_a_request(service: Any) -> None:
    service.publish("v1", {KNOWN_USER: "known"}, "popular")
    sink = KafkaSink(f"{LOOPBACK}:{free_port()}", "nowhere", queue_size=5)
    app = create_app(Settings(redis_url=service.url), request_log=RequestLog(None, sink))
    client = app.test_client()
    dropped_before = service.counter("recsys_service_request_log_dropped_total", cause="queue_full")
    try:
        started = time.monotonic()
        statuses = [client.get(f"/recommend/{KNOWN_USER}").status_code for _ in range(50)]
        elapsed = time.monotonic() - started
    finally:
        closing = time.monotonic()
        sink.close()
        closed_in = time.monotonic() - closing
        app.extensions[STORE_KEY].close()
    assert statuses == [200] * 50
    assert elapsed < 2.0  # a blocking producer would wait seconds per request
    dropped = service.counter("recsys_service_request_log_dropped_total", cause="queue_full")
    assert dropped - dropped_before >= 50 - 5 - 1  # all but the queue and the one in hand
    assert closed_in < 3.0
