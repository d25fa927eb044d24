"""The refresher: reads the event stream, and rewrites the lists of users who just watched or
rated something, in every version the service reads, with that version's own model.

Per batch (at most REFRESH_BATCH_SECONDS of events, REFRESH_BATCH_USERS users):

1. poll the topic; each line goes through ingest's grammar (``ingest.events.parse_line``,
   the consumer's validation); watches and rates are kept (``refresher.recent``);
2. read what is served (``refresher.store``); a version not seen before gets its model and
   the snapshot that model was trained on loaded (``refresher.history.Base``), and its
   progress mark (where its refreshing stands) from Redis;
3. for each served version, the users with events past its mark: their history (snapshot +
   events since), folded into its model, ranked as precompute ranks (``refresher.lists``);
4. write them, re-read the routing with the new marks, undo a version retired meanwhile
   (``refresher.store``); commit the topic offsets every served version has reached (at
   most once a second: the operators' view of the lag, not the restart point).

Reading starts, per partition, at the end of the oldest kept version's snapshot, so every
event since a list was computed is in memory; the work starts at each version's mark. So a
restart (even after ``kill -9``) redoes at most the batches after the last marks (writes are
idempotent: the same history gives the same list), a publish gets its new version caught up
from its snapshot's end, and a rollback target from where its refreshing stopped.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from ingest.events import Rejected, parse_line
from ingest.snapshot import SnapshotStore, open_store
from precompute.bodies import Catalogue
from precompute.redisclient import Client, connect
from precompute.rules import rules_from_settings
from refresher import prom
from refresher.history import Base
from refresher.lists import Lists, lists_for
from refresher.recent import Recent
from refresher.settings import Settings
from refresher.store import Routing, read_marks, read_routing, write_lists
from training.registry import ModelRegistry

log = logging.getLogger(__name__)

POLL_MS = 100
COMMIT_SECONDS = 1.0


@dataclass
class Stats:
    events: int = 0
    refreshed: int = 0
    skipped: int = 0
    batches: int = 0
    discarded: int = 0
    busy_seconds: float = 0.0  # in batches: histories, fold-in, ranking, writes
    rejected: Counter = field(default_factory=Counter)
    batch_users: list[int] = field(default_factory=list)  # users refreshed per version-batch

    def as_dict(self) -> dict:
        own = {k: v for k, v in self.__dict__.items() if k != "batch_users"}
        return {**own, "busy_seconds": round(self.busy_seconds, 3), "rejected": dict(self.rejected)}


@dataclass
class Version:
    """A served version: its model's base, and where its refreshing stands."""

    base: Base
    mark: dict[int, int]


class Refresher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = Stats()
        self.recent = Recent()
        self.position: dict[int, int] = {}  # next offset to read, per partition
        self.recent_start: dict[int, int] = {}  # where reading (re)started: memory holds all since
        self.versions: dict[str, Version] = {}
        self._bases: dict[str, Base] = {}  # by model version
        self._catalogues: dict[str, Catalogue] = {}
        self._stop = False
        self._kafka: KafkaConsumer | None = None
        self._committed_at = 0.0  # monotonic

    @cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.settings.precompute.data_dir)

    @cached_property
    def snapshots(self) -> SnapshotStore:
        return open_store(self.settings.precompute.data_dir)

    def stop(self, *_: object) -> None:
        """Finish the batch in hand, then return from ``run``."""
        self._stop = True

    # -- the loop ------------------------------------------------------------------------

    def run(self, idle_seconds: float | None = None) -> Stats:
        """Refresh until ``stop()`` (SIGTERM, SIGINT) or, if given, ``idle_seconds`` with
        every served version caught up and nothing new on the topic."""
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        prom.serve(self.settings.metrics_port)
        try:
            with connect(self.settings.precompute) as client:
                return self._run(client, idle_seconds)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            if self._kafka is not None:
                self._kafka.close(autocommit=False)

    def _run(self, client: Client, idle_seconds: float | None) -> Stats:
        quiet_since = time.monotonic()
        while not self._stop:
            routing = read_routing(client)
            self._follow(routing)
            if not self.versions:
                time.sleep(self.settings.batch_seconds)  # nothing published yet
                continue
            read = self._poll()
            busy = self._refresh_batch(client) or read
            if busy:
                quiet_since = time.monotonic()
            elif idle_seconds is not None and time.monotonic() - quiet_since >= idle_seconds:
                break
        return self.stats

    # -- versions ------------------------------------------------------------------------

    def _follow(self, routing: Routing) -> None:
        """Start refreshing versions that became served, stop those that are not; make sure
        every event since the oldest of their snapshots is in memory."""
        prom.VERSIONS.set(len(routing.served))
        dropped = [v for v in self.versions if v not in routing.served]
        for version in dropped:
            log.info("version %s no longer served: not refreshed any more", version)
            del self.versions[version]
        if dropped and self.versions:
            self.recent.forget_before(self._needed_start())  # no snapshot needs them now
        new = [v for v in routing.served if v not in self.versions]
        if not new:
            return
        with connect(self.settings.precompute) as client:
            for version in sorted(new):
                model_version, _, marks = read_marks(client, version)
                if model_version is None:
                    continue  # its metadata is gone: being deleted
                base = self._base(model_version)
                mark = {p: marks.get(p, end + 1) for p, end in base.end.items()}
                mark.update({p: o for p, o in marks.items() if p not in mark})
                self.versions[version] = Version(base, mark)
                log.info("refreshing version %s (%s) from %s", version, model_version, mark)
        self._connect()
        start = self._needed_start()
        if any(start.get(p, 0) < self.recent_start.get(p, 0) for p in start):
            self._rewind(start)

    def _base(self, model_version: str) -> Base:
        if model_version not in self._bases:
            model, meta = self.registry.load(model_version)
            base = Base(model, meta, self.snapshots.load(meta.snapshot_id)).prepare()
            self._bases[model_version] = base
            self._catalogues[model_version] = Catalogue(model.item_ids)
        return self._bases[model_version]

    def _needed_start(self) -> dict[int, int]:
        """Per partition, the first offset a served version's snapshot lacks."""
        partitions = set(self.position) | {p for v in self.versions.values() for p in v.base.end}
        return {
            p: min(v.base.end.get(p, -1) + 1 for v in self.versions.values()) for p in partitions
        }

    # -- the stream ------------------------------------------------------------------------

    def _connect(self) -> None:
        """Every partition of the topic, assigned directly (one refresher per topic: no
        group rebalancing to wait for); the group only holds the committed offsets."""
        if self._kafka is not None:
            return
        s = self.settings
        self._kafka = KafkaConsumer(
            bootstrap_servers=s.bootstrap.split(","),
            group_id=s.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=max(100, s.session_timeout_ms // 5),
            max_poll_records=10_000,
            reconnect_backoff_max_ms=5_000,
        )
        partitions = None
        deadline = time.monotonic() + 60
        while not partitions and time.monotonic() < deadline and not self._stop:
            partitions = self._kafka.partitions_for_topic(s.topic)
            if not partitions:
                time.sleep(0.5)
        if not partitions:
            raise KafkaError(f"topic {s.topic} not found on {s.bootstrap}")
        self._kafka.assign([TopicPartition(s.topic, p) for p in sorted(partitions)])
        self.position = dict.fromkeys(sorted(partitions), 0)
        self.recent_start = dict(self.position)
        self._rewind(self._needed_start())

    def _rewind(self, start: dict[int, int]) -> None:
        """Read again from ``start``: the events before it are dropped from memory."""
        assert self._kafka is not None
        self.recent.clear()
        for partition in self.position:
            offset = start.get(partition, 0)
            self._kafka.seek(TopicPartition(self.settings.topic, partition), offset)
            self.position[partition] = offset
        self.recent_start = dict(self.position)
        log.info("reading %s from %s", self.settings.topic, self.position)

    def _poll(self) -> int:
        """Read for at most REFRESH_BATCH_SECONDS; returns the lines read."""
        assert self._kafka is not None
        deadline = time.monotonic() + self.settings.batch_seconds
        read = 0
        while not self._stop:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch = self._kafka.poll(timeout_ms=int(min(remaining * 1000, POLL_MS)))
            if not batch:
                if read:
                    break  # caught up: refresh what we have now
                continue
            for tp, records in batch.items():
                for record in records:
                    self._add(tp.partition, record)
                self.position[tp.partition] = records[-1].offset + 1
                read += len(records)
        self.stats.events += read
        return read

    def _add(self, partition: int, record: object) -> None:
        raw = getattr(record, "value", None) or b""
        parsed = parse_line(raw, scale=self.settings.scale)
        if isinstance(parsed, Rejected):
            self.stats.rejected[parsed.reason.value] += 1
            prom.REJECTED.labels(parsed.reason.value).inc()
            return
        stamp = getattr(record, "timestamp", -1)
        seconds = stamp / 1000 if stamp and stamp > 0 else time.time()
        self.recent.add(partition, getattr(record, "offset", 0), parsed, seconds)

    # -- one batch ---------------------------------------------------------------------------

    def _refresh_batch(self, client: Client) -> bool:
        """Refresh every served version's users past its mark (one chunk each); returns
        whether there was anything to do."""
        started = time.perf_counter()
        lists: dict[str, tuple[list[int], list[bytes]]] = {}
        reaches: dict[str, dict[int, int]] = {}
        stamps: list[float] = []
        for name, version in self.versions.items():
            if all(version.mark.get(p, 0) >= o for p, o in self.position.items()):
                continue
            reach, users = self.recent.chunk(version.mark, self.position, self.settings.batch_users)
            reaches[name] = reach
            stamp = self.recent.oldest_stamp(version.mark)
            if stamp is not None:
                stamps.append(stamp)
            if users:
                made = self._lists(version, np.array(sorted(users), dtype=np.int64))
                lists[name] = (made.user_ids, made.bodies)
        if not reaches:
            self._report_lag()
            return False
        routing, written = write_lists(client, lists, reaches)
        for name, reach in reaches.items():
            if name in self.versions and name not in written.discarded:
                self.versions[name].mark.update(reach)
        if written.discarded:
            prom.DISCARDED.inc(len(written.discarded))
            self.stats.discarded += len(written.discarded)
            log.info("versions %s retired during the batch: its writes undone", written.discarded)
        now = time.time()
        for stamp in stamps:
            prom.EVENT_TO_WRITE.observe(max(0.0, now - stamp))
        self._follow(routing)
        self._commit()
        self.stats.batches += 1
        self.stats.busy_seconds += time.perf_counter() - started
        prom.BATCH_SECONDS.observe(time.perf_counter() - started)
        prom.LAST_BATCH.set_to_current_time()
        self._report_lag()
        return True

    def _lists(self, version: Version, user_ids: np.ndarray) -> Lists:
        base = version.base
        histories = base.histories(user_ids, self.recent.since(user_ids.tolist(), base.end))
        pre = self.settings.precompute
        made = lists_for(
            base,
            self._catalogues[base.meta.version],
            histories,
            min_history=self.settings.min_history,
            rules=rules_from_settings(pre, base.model.item_ids),
            pool=pre.rule_pool,
            block_size=pre.block_size,
            threads=pre.threads,
        )
        prom.FOLD_SECONDS.observe(made.fold_seconds)
        prom.REFRESHED.labels("known").inc(made.known)
        prom.REFRESHED.labels("new").inc(len(made.user_ids) - made.known)
        prom.SKIPPED.inc(made.skipped)
        self.stats.refreshed += len(made.user_ids)
        self.stats.batch_users.append(len(made.user_ids))
        self.stats.skipped += made.skipped
        return made

    def floor(self) -> dict[int, int]:
        """Per partition, the offset every served version has been refreshed up to."""
        return {
            p: min((v.mark.get(p, 0) for v in self.versions.values()), default=o)
            for p, o in self.position.items()
        }

    def _commit(self) -> None:
        """Commit what every served version has reached, at most every COMMIT_SECONDS: a
        synchronous commit is a broker round trip (2 ms a batch), and nothing waits on it (a
        restart reads from the served snapshots' ends and skips what the version marks in
        Redis say was refreshed); the group's offsets serve the operators' lag view."""
        assert self._kafka is not None
        if time.monotonic() - self._committed_at < COMMIT_SECONDS:
            return
        offsets = {
            TopicPartition(self.settings.topic, p): OffsetAndMetadata(o, "", -1)
            for p, o in self.floor().items()
        }
        try:
            self._kafka.commit(offsets)
            self._committed_at = time.monotonic()
        except KafkaError as exc:
            log.warning("commit failed (%s); the marks in Redis hold the progress", exc)

    def _report_lag(self) -> None:
        if self._kafka is None:
            return
        floor = self.floor()
        for tp in self._kafka.assignment():
            end = self._kafka.highwater(tp)
            if end is not None:
                prom.LAG_EVENTS.labels(str(tp.partition)).set(max(0, end - floor[tp.partition]))
        oldest = self.recent.oldest_stamp(floor)
        prom.LAG_SECONDS.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
