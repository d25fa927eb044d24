"""One structured line per ``/recommend`` request: who asked, what they got, how fast.

The counterpart of the stream's ``recommendation request`` lines, in JSON so nobody has to
parse it with a regex::

    {"time":"2025-10-17T01:33:45.122Z","user":227244,"status":200,"variant":"control",
     "version":"251017013000123","source":"personal","latency_ms":1.42,
     "result":"big+hero+6+2014,avatar+2009,..."}

``user`` is null, and ``variant``/``version``/``source`` absent, for a rejected user ID.

Lines go to stdout (the container log is the transport) with one ``os.write`` each, not
through ``logging``: at thousands of requests per second logging's record machinery costs
several times the write itself, and one write of a line shorter than PIPE_BUF is atomic, so
the workers sharing stdout never interleave lines. With REQUEST_LOG_KAFKA_BOOTSTRAP set they
also go to a Kafka topic through ``KafkaSink``, which never blocks or fails a request. A
write error is counted, never raised.
"""

from __future__ import annotations

import os
import sys
import time

from contracts.requestrecord import RecordFormatter
from service import prom
from service.kafkasink import KafkaSink
from service.lookup import Answer
from service.settings import Settings


class RequestLog:
    def __init__(self, fd: int | None = None, sink: KafkaSink | None = None) -> None:
        """``fd``: where lines are written (stdout's descriptor in production), or None."""
        self._fd = fd
        self._sink = sink
        self._formatter = RecordFormatter()

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLog:
        sink = None
        if settings.request_log_kafka_bootstrap:
            sink = KafkaSink(
                settings.request_log_kafka_bootstrap,
                settings.request_log_kafka_topic,
                settings.request_log_queue_size,
            )
        fd = sys.stdout.fileno() if settings.request_log == "stdout" else None
        return cls(fd, sink)

    @property
    def enabled(self) -> bool:
        return self._fd is not None or self._sink is not None

    def record(
        self, user_id: int | None, status: int, latency_seconds: float, answer: Answer | None
    ) -> None:
        line = self.format(user_id, status, latency_seconds, answer, time.time())
        if self._fd is not None:
            self._write(line.encode("ascii") + b"\n")
        if self._sink is not None:
            self._sink.offer(b"%d" % (user_id or 0), line.encode("ascii"))

    def format(
        self,
        user_id: int | None,
        status: int,
        latency_seconds: float,
        answer: Answer | None,
        now: float,
    ) -> str:
        """The record line (``contracts.requestrecord``) of one request."""
        if answer is None:
            return self._formatter.format(
                now, user_id, status, latency_seconds, labels=None, result=""
            )
        return self._formatter.format(
            now,
            user_id,
            status,
            latency_seconds,
            labels=(answer.variant, answer.version, answer.source),
            result=answer.body.decode("utf-8", "replace"),
        )

    def _write(self, data: bytes) -> None:
        try:
            written = os.write(self._fd, data)  # type: ignore[arg-type]
            while written < len(data):  # only for a line longer than PIPE_BUF
                data = data[written:]
                written = os.write(self._fd, data)  # type: ignore[arg-type]
        except OSError:
            prom.REQUEST_LOG_DROPPED.labels("stdout_error").inc()

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
