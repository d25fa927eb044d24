"""Produces request log lines to a Kafka topic without ever holding up a request.

A request only does ``queue.put_nowait``: if the bounded queue is full the line is dropped
and counted, never waited for. One daemon thread per worker drains the queue into a
kafka-python producer, which it (re)creates with backoff while the broker is unreachable;
lines wait in the queue meanwhile, so a short broker outage loses nothing and a long one
loses only what does not fit. The thread starts on the first line, so it lives in the
gunicorn worker that uses it, never in the master before a fork.

kafka-python is imported only here and only when a bootstrap is configured: the service
image carries it, but a service without REQUEST_LOG_KAFKA_BOOTSTRAP never loads it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any

from service import prom

log = logging.getLogger(__name__)

CONNECT_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0)  # then 5 s between tries
CLOSE_FLUSH_SECONDS = 2.0  # at worker exit, how long queued lines may take to go out
IDLE_CHECK_SECONDS = 0.5  # an idle thread looks this often whether it should stop
_STOP = object()


class KafkaSink:
    def __init__(self, bootstrap: str, topic: str, queue_size: int) -> None:
        self._bootstrap = bootstrap.split(",")
        self._topic = topic
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closing = threading.Event()
        self._attempts = 0  # failed connects in a row, for the backoff

    def offer(self, key: bytes, line: bytes) -> None:
        """Queue one line for the topic; never blocks, never raises."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait((key, line))
        except queue.Full:
            prom.REQUEST_LOG_DROPPED.labels("queue_full").inc()

    def close(self, timeout: float = CLOSE_FLUSH_SECONDS) -> None:
        """Send what is queued (within about ``timeout``) and stop the thread. Lines still
        queued while Kafka is unreachable are dropped and counted as ``shutdown``."""
        self._closing.set()
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)
        self._thread.join(timeout)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closing.is_set():
                thread = threading.Thread(target=self._run, name="request-log-kafka", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        producer = None
        while True:
            try:
                item = self._queue.get(timeout=IDLE_CHECK_SECONDS)
            except queue.Empty:
                if self._closing.is_set():
                    break
                continue
            if item is _STOP:
                break
            while producer is None and not self._closing.is_set():
                producer = self._connect()
            if producer is None:  # closing while Kafka is unreachable: give up on the rest
                prom.REQUEST_LOG_DROPPED.labels("shutdown").inc()
                continue
            key, line = item
            try:
                future = producer.send(self._topic, key=key, value=line)
            except Exception as exc:  # buffer full past max_block_ms, or the producer broke
                prom.REQUEST_LOG_DROPPED.labels("send_failed").inc()
                log.warning("request log line not produced: %s: %s", type(exc).__name__, exc)
                continue
            future.add_callback(_sent)
            future.add_errback(_failed)
        if producer is not None:
            producer.flush(CLOSE_FLUSH_SECONDS)
            producer.close(CLOSE_FLUSH_SECONDS)

    def _connect(self) -> Any:
        """A producer, or None after a backoff wait (only this thread waits; close() cuts
        the wait short)."""
        from kafka import KafkaProducer

        attempt = self._attempts
        try:
            producer = KafkaProducer(
                bootstrap_servers=self._bootstrap,
                linger_ms=50,  # batch the lines of ~50 ms: far fewer produce requests
                max_block_ms=5000,  # a send waits this long at most, in this thread only
                request_timeout_ms=10_000,
                retries=3,
            )
        except Exception as exc:
            delay = CONNECT_BACKOFF_SECONDS[min(attempt, len(CONNECT_BACKOFF_SECONDS) - 1)]
            if attempt == 0:
                log.warning("request log: Kafka unreachable (%s), retrying", exc)
            self._attempts = attempt + 1
            self._closing.wait(delay)
            return None
        if attempt:
            log.warning("request log: Kafka reachable after %d attempts", attempt)
        self._attempts = 0
        return producer


def _sent(_metadata: object) -> None:
    prom.REQUEST_LOG_SENT.inc()


def _failed(exc: BaseException) -> None:
    prom.REQUEST_LOG_DROPPED.labels("send_failed").inc()
    log.warning("request log line not produced: %s: %s", type(exc).__name__, exc)
