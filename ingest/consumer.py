"""The Kafka consumer: stream lines in, validated segments out, offsets committed after.

Order of operations per batch, which is what makes a crash safe:
parse every line → write each partition's segment durably (atomic rename) → commit offsets.
The journal, not the committed offset, is the truth about what was consumed: whenever the
group hands this process a partition, it seeks to where the journal ends for it, so events
written but not yet committed (a ``kill -9`` between rename and commit) are not written
twice, and events not yet written are read again. A segment's content is a pure function
of its offset range, so even a replayed range yields the very same rows.

Broker outages are waited out: connecting retries with backoff, kafka-python reconnects
by itself, and a failed commit is only counted (the next batch commits past it).
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from ingest import prom
from ingest.events import Rejected, parse_line
from ingest.journal import Journal, SegmentBuilder
from ingest.progress import Progress
from ingest.settings import Settings
from ingest.snapshot import open_store

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
ASSIGNMENT_TIMEOUT_SECONDS = 120.0  # with --idle: give up if the group never hands us a partition


@dataclass
class ConsumeStats:
    consumed: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    segments: int = 0

    def as_dict(self) -> dict:
        return {
            "consumed": self.consumed,
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "segments": self.segments,
        }


class _Rebalance(ConsumerRebalanceListener):
    """Flush before partitions leave, seek to the journal's end when they arrive."""

    def __init__(self, consumer: Consumer):
        self.consumer = consumer

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.consumer.flush({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.consumer.seek_to_journal(assigned)


class Consumer:
    """Consumes one topic, as a member of a consumer group, into a journal.

    ``run()`` returns when stopped (SIGTERM/SIGINT: the current batch is finished and
    committed first) or, if asked, after a stretch with no new events.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.journal = Journal(settings.data_dir, settings.topic)
        self.stats = ConsumeStats()
        self._stop = False
        self._kafka: KafkaConsumer | None = None
        self._pending: dict[int, SegmentBuilder] = {}
        self._assigned_at: float | None = None
        self._durable: dict[int, int] = {}  # partition -> next offset not yet journaled
        self._progress: Progress | None = None  # journaled of the high watermarks, while running
        store = open_store(settings.data_dir)
        prom.watch_snapshot_age(store.latest_created_at)

    @property
    def _client(self) -> KafkaConsumer:
        """The Kafka consumer; only used once ``_connect()`` has made it."""
        assert self._kafka is not None, "not connected"
        return self._kafka

    # -- lifecycle ---------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        """Finish the current batch, commit it, then return from run()."""
        self._stop = True

    def run(self, idle_seconds: float | None = None) -> ConsumeStats:
        """Consume until stop() or, if given, ``idle_seconds`` without events."""
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._run(idle_seconds)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self, idle_seconds: float | None) -> ConsumeStats:
        prom.serve(self.settings.metrics_port)
        if not self._connect():
            return self.stats
        started = last_event = time.monotonic()
        self._progress = Progress(f"consume {self.settings.topic}", unit="events", log=log)
        try:
            while not self._stop:
                if self._poll_batch():
                    self.flush()
                    last_event = time.monotonic()
                elif idle_seconds is not None and self._idle(started, last_event, idle_seconds):
                    break
            self.flush()
        finally:
            self._progress.close()
            self._progress = None
            self._client.close(autocommit=False)
        return self.stats

    def _idle(self, started: float, last_event: float, idle_seconds: float) -> bool:
        """Idle time counts from the last event or assignment: joining a group takes seconds."""
        now = time.monotonic()
        if self._assigned_at is None:
            if now - started > ASSIGNMENT_TIMEOUT_SECONDS:
                log.error("no partition of %s assigned; giving up", self.settings.topic)
                return True
            return False
        return now - max(last_event, self._assigned_at) >= idle_seconds

    def _connect(self) -> bool:
        """Join the group, retrying with backoff while the broker is unreachable."""
        s = self.settings
        backoff = 0.5
        while not self._stop:
            try:
                self._kafka = KafkaConsumer(
                    bootstrap_servers=s.bootstrap.split(","),
                    group_id=s.group,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    max_poll_records=10_000,
                    session_timeout_ms=s.session_timeout_ms,
                    heartbeat_interval_ms=max(100, s.session_timeout_ms // 5),
                    reconnect_backoff_max_ms=5_000,
                )
                self._kafka.subscribe([s.topic], listener=_Rebalance(self))
                return True
            except KafkaError as exc:
                prom.CONNECT_FAILURES.inc()
                log.warning(
                    "broker %s unreachable (%s); retrying in %.1fs", s.bootstrap, exc, backoff
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        return False

    # -- partitions ----------------------------------------------------------------------

    def seek_to_journal(self, partitions: set[TopicPartition]) -> None:
        """Resume each partition where the journal ends; from the beginning if it has none.

        Committed offsets are not trusted for this: they trail the journal after a crash
        between write and commit, and lead it if the data directory was lost.
        """
        self._assigned_at = time.monotonic()
        durable = self.journal.positions()
        self._durable = {}
        for tp in partitions:
            self._pending.pop(tp.partition, None)
            self._durable[tp.partition] = durable.get(tp.partition, 0)
            if tp.partition in durable:
                self._client.seek(tp, durable[tp.partition])
            else:
                self._client.seek_to_beginning(tp)
        log.info("assigned %s", {tp.partition: durable.get(tp.partition, 0) for tp in partitions})

    def _update_lag(self) -> None:
        """Lag = the partition's high watermark minus what is durably journaled, so events
        read but still in an open batch count as lag: they would be lost to a crash. The
        progress shown is the same: journaled events of the high watermarks' sum."""
        total = journaled = 0
        for tp in self._client.assignment():
            end = self._client.highwater(tp)
            if end is not None:
                durable = self._durable.get(tp.partition, 0)
                prom.LAG.labels(str(tp.partition)).set(max(0, end - durable))
                total, journaled = total + end, journaled + min(durable, end)
        if self._progress is not None and total:
            if self._progress.total is None:  # the first look: what was journaled before
                self._progress.rebase(journaled, total)
            else:
                self._progress.update(journaled, total)

    # -- batches -------------------------------------------------------------------------

    def _poll_batch(self) -> int:
        """Read until the batch is full, old, or caught up; returns the events read."""
        s = self.settings
        deadline = time.monotonic() + s.batch_seconds
        count = 0
        while count < s.batch_size and not self._stop:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            records = self._client.poll(
                timeout_ms=int(min(remaining, 0.5) * 1000), max_records=s.batch_size - count
            )
            self._update_lag()
            if not records:
                if count:
                    break  # caught up: write what we have instead of waiting for the deadline
                continue
            for tp, messages in records.items():
                self._add(tp.partition, messages)
                count += len(messages)
        return count

    def _add(self, partition: int, messages: list) -> None:
        builder = self._pending.get(partition)
        if builder is None:
            builder = self._pending[partition] = SegmentBuilder(partition)
        scale = self.settings.scale
        rejected = self.stats.rejected
        accepted = 0
        for message in messages:
            raw = message.value or b""
            parsed = parse_line(raw, scale=scale)
            builder.add(message.offset, parsed, raw)
            if isinstance(parsed, Rejected):
                rejected[parsed.reason.value] += 1
                prom.REJECTED.labels(parsed.reason.value).inc()
            else:
                accepted += 1
        self.stats.accepted += accepted
        self.stats.consumed += len(messages)

    def flush(self, partitions: set[int] | None = None) -> None:
        """Write the pending segments (of ``partitions``, default all), then commit them."""
        chosen = [p for p in self._pending if partitions is None or p in partitions]
        if not chosen:
            return
        started = time.perf_counter()
        offsets = {}
        for partition in chosen:
            builder = self._pending.pop(partition)
            if builder.empty:
                continue
            self.journal.write(builder)
            self.stats.segments += 1
            for kind, n in Counter(builder.columns["kind"]).items():
                prom.EVENTS.labels(kind).inc(n)
            self._durable[partition] = builder.last + 1
            tp = TopicPartition(self.settings.topic, partition)
            offsets[tp] = OffsetAndMetadata(builder.last + 1, "", -1)
        try:
            self._client.commit(offsets)
        except KafkaError as exc:
            prom.COMMIT_FAILURES.inc()
            log.warning(
                "commit failed (%s); the journal holds the batch, a later commit covers it", exc
            )
        prom.BATCH_SECONDS.observe(time.perf_counter() - started)
        prom.LAST_BATCH.set_to_current_time()
        self._update_lag()
        log.info("batch durable: %s", {tp.partition: o.offset for tp, o in offsets.items()})
