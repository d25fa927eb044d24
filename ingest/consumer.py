"""The Kafka consumer: stream lines in, validated segments out, offsets committed after.

Order of operations per batch, which is what makes a crash safe:
parse every line → write each partition's segment durably (rename) → commit offsets.
On start the consumer seeks every partition to where the journal ends, so events written
but not yet committed are not written twice, and events not yet written are read again.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from ingest.events import Rejected, parse_line
from ingest.journal import Journal, SegmentBuilder
from ingest.settings import Settings

log = logging.getLogger(__name__)


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


class Consumer:
    """Consumes one topic into a journal; ``run()`` returns when stopped or idle."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.journal = Journal(settings.data_dir, settings.topic)
        self.stats = ConsumeStats()
        self._stop = False
        self._kafka = KafkaConsumer(
            bootstrap_servers=settings.bootstrap.split(","),
            group_id=settings.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=10_000,
        )
        self._partitions = self._assign()

    def _assign(self) -> list[TopicPartition]:
        topic = self.settings.topic
        ids = None
        deadline = time.monotonic() + 30
        while not ids and time.monotonic() < deadline:
            ids = self._kafka.partitions_for_topic(topic)
            if not ids:
                time.sleep(0.5)
        if not ids:
            raise RuntimeError(f"topic {topic!r} not found on {self.settings.bootstrap}")
        partitions = [TopicPartition(topic, p) for p in sorted(ids)]
        self._kafka.assign(partitions)
        durable = self.journal.positions()
        for tp in partitions:
            committed = self._kafka.committed(tp)
            start = durable.get(tp.partition, committed)
            if start is not None:
                self._kafka.seek(tp, start)
            else:
                self._kafka.seek_to_beginning(tp)
        return partitions

    def stop(self, *_: object) -> None:
        """Finish the current batch, commit it, then return from run()."""
        self._stop = True

    def run(self, idle_seconds: float | None = None) -> ConsumeStats:
        """Consume until stop() (SIGTERM/SIGINT) or, if given, ``idle_seconds`` without events."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        last_event = time.monotonic()
        while not self._stop:
            batch = self._poll_batch()
            if batch:
                self._write(batch)
                last_event = time.monotonic()
            elif idle_seconds is not None and time.monotonic() - last_event >= idle_seconds:
                break
        self._kafka.close(autocommit=False)
        return self.stats

    def _poll_batch(self) -> dict[int, SegmentBuilder]:
        s = self.settings
        deadline = time.monotonic() + s.batch_seconds
        builders: dict[int, SegmentBuilder] = {}
        count = 0
        while count < s.batch_size and not self._stop:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            records = self._kafka.poll(
                timeout_ms=int(min(remaining, 0.5) * 1000), max_records=s.batch_size - count
            )
            if not records:
                if count:
                    break  # caught up: write what we have instead of waiting for the deadline
                continue
            for tp, messages in records.items():
                builder = builders.setdefault(tp.partition, SegmentBuilder(tp.partition))
                for message in messages:
                    raw = message.value or b""
                    parsed = parse_line(raw, scale=s.scale)
                    builder.add(message.offset, parsed, raw)
                    if isinstance(parsed, Rejected):
                        self.stats.rejected[parsed.reason.value] += 1
                    else:
                        self.stats.accepted += 1
                count += len(messages)
        self.stats.consumed += count
        return builders

    def _write(self, builders: dict[int, SegmentBuilder]) -> None:
        offsets = {}
        for partition, builder in builders.items():
            if builder.empty:
                continue
            self.journal.write(builder)
            self.stats.segments += 1
            tp = TopicPartition(self.settings.topic, partition)
            offsets[tp] = OffsetAndMetadata(builder.last + 1, "", -1)
        self._kafka.commit(offsets)
        log.info("batch durable: %s", {tp.partition: o.offset for tp, o in offsets.items()})
