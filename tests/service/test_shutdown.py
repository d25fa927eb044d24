"""Stopping the service under gunicorn: every worker exits within the graceful timeout, by
itself, with its request log flushed, whoever stops it and whatever its clients do.

Clients that hold a worker's threads are the hard part: a connection that sends nothing (a
browser's spare connection) and one that sends half a request. Both are open, and requests
are running, when the signal comes: SIGTERM to the master (Kubernetes, a supervisor, the
demo) or SIGINT to the whole process group (Ctrl-C in a terminal).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from kafka import KafkaConsumer, TopicPartition

from devstack.servers import LOOPBACK

GRACEFUL_TIMEOUT = 10.0  # service/gunicorn.conf.py
USERS = list(range(1, 21))


def hammer(base: str, stop: threading.Event, answered: list[int]) -> None:
    """One keep-alive client asking for users in turn until stopped (or refused)."""
    with requests.Session() as http:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                resp = http.get(f"{base}/recommend/{USERS[i % len(USERS)]}", timeout=5)
            except requests.RequestException:
                time.sleep(0.05)
                continue
            answered.append(resp.status_code)


@contextlib.contextmanager
def stuck_clients(port: int, idle: int = 6, half: int = 2) -> Iterator[None]:
    """Connections that send nothing, and ones that send half a request, held open."""
    sockets = []
    try:
        for _ in range(idle):
            sockets.append(socket.create_connection((LOOPBACK, port), timeout=5))
        for _ in range(half):
            sock = socket.create_connection((LOOPBACK, port), timeout=5)
            sock.sendall(b"GET /recommend/1 HTTP/1.1\r\nHost: recsys\r\n")  # no blank line
            sockets.append(sock)
        yield
    finally:
        for sock in sockets:
            sock.close()


def read_topic(bootstrap: str, topic: str, timeout: float = 15) -> list[dict]:
    """Every line on the topic, once the end offsets are reached."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        lines: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                lines.extend(json.loads(record.value) for record in batch)
            if all(consumer.position(tp) >= end[tp] for tp in partitions):
                break
        return lines
    finally:
        consumer.close()


@pytest.mark.parametrize("how", ["SIGTERM to the master", "SIGINT to the process group"])
def test_every_worker_exits_in_time_with_clients_holding_its_threads(
    how: str,
    redis_client: redis.Redis,
    redis_url: str,
    bootstrap: str,
    topic: str,
    tmp_path: Path,
    gunicorn: Callable[..., Any],
    publish_lists: Callable[..., dict[int, str]],
    movies: Callable[..., list[str]],
) -> None:
    publish_lists(redis_client, "v1", {u: movies(f"u{u}") for u in USERS}, movies("pop"))
    service = gunicorn(
        {
            "REDIS_URL": redis_url,
            "WEB_CONCURRENCY": "2",
            "GUNICORN_THREADS": "2",
            "REQUEST_LOG_KAFKA_BOOTSTRAP": bootstrap,
            "REQUEST_LOG_KAFKA_TOPIC": topic,
        },
        tmp_path,
    ).start()
    stop = threading.Event()
    answered: list[int] = []
    clients = [
        threading.Thread(target=hammer, args=(service.base, stop, answered)) for _ in range(3)
    ]
    try:
        deadline = time.monotonic() + 15
        while len(service.workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = service.workers()
        assert len(workers) == 2
        for client in clients:
            client.start()
        with stuck_clients(service.port):
            time.sleep(1.5)  # requests running, stuck clients accepted by the workers
            assert answered, "no request was answered before the stop"
            started = time.monotonic()
            if how.startswith("SIGTERM"):
                service.proc.send_signal(signal.SIGTERM)
            else:
                os.killpg(service.proc.pid, signal.SIGINT)
            returncode = service.proc.wait(timeout=GRACEFUL_TIMEOUT + 20)
            took = time.monotonic() - started
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=10)
        service.stop()

    log = service.stderr.read_text()
    assert "SIGKILL" not in log, log
    assert "Traceback" not in log, log
    assert returncode == 0
    assert took < GRACEFUL_TIMEOUT, f"{how}: stopped in {took:.1f}s"
    exited = {int(pid) for pid in re.findall(r"Worker exiting \(pid: (\d+)\)", log)}
    assert exited == workers, log
    if how.startswith("SIGTERM"):
        # A graceful stop finishes every request, then worker_exit flushes the request log:
        # what reached Kafka is exactly what went to stdout.
        stdout = [json.loads(line) for line in service.stdout.read_text().splitlines()]
        assert len(stdout) >= len(answered) > 0
        in_kafka = read_topic(bootstrap, topic)
        assert sorted(map(json.dumps, in_kafka)) == sorted(map(json.dumps, stdout))
