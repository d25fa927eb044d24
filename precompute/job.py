"""The precompute step as one call: model + its snapshot -> every user's list -> Redis."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import redis

from ingest.snapshot import SnapshotStore
from precompute.bodies import cold_start_body, user_bodies
from precompute.publish import publish
from precompute.settings import Settings
from training.interactions import Interactions
from training.registry import ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrecomputeReport:
    version: str
    model_version: str
    snapshot_id: str
    users: int
    removed_versions: list[str]
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def precompute_and_publish(
    model_version: str | None = None, settings: Settings | None = None
) -> PrecomputeReport:
    """Score every user of the model's training snapshot and publish the lists atomically."""
    settings = settings or Settings.from_env()
    started = time.perf_counter()
    model, meta = ModelRegistry(settings.data_dir).load(model_version)
    snapshot = SnapshotStore(settings.data_dir).load(meta.snapshot_id)
    data = Interactions.from_snapshot(snapshot)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        result = publish(
            client,
            user_bodies(model, data, block_size=settings.block_size),
            default_body=cold_start_body(data),
            meta={
                "model_version": meta.version,
                "algorithm": meta.algorithm,
                "snapshot_id": snapshot.snapshot_id,
            },
            batch=settings.publish_batch,
            keep=settings.keep_versions,
        )
    finally:
        client.close()
    report = PrecomputeReport(
        version=result.version,
        model_version=meta.version,
        snapshot_id=snapshot.snapshot_id,
        users=result.users,
        removed_versions=result.removed,
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info("published %s", report)
    return report
