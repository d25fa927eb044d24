"""The precompute step as one call: model + its snapshot -> every user's list -> Redis."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from precompute import publish, stages
from precompute.settings import Settings
from precompute.shard import Shard
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
    bytes_per_user: float | None = None  # Redis memory the version added, per user

    def as_dict(self) -> dict:
        return asdict(self)


def precompute_and_publish(
    model_version: str | None = None, settings: Settings | None = None
) -> PrecomputeReport:
    """Score every user of the model's training snapshot and publish the lists atomically.

    Without ``model_version`` it publishes the production model (the one the gate last
    promoted); before the gate has promoted any, the newest model, with a warning.
    """
    settings = settings or Settings.from_env()
    started = time.perf_counter()
    inputs = stages.Inputs.load(settings, resolve_model_version(settings, model_version))
    version = stages.begin(settings, inputs, shards=1)
    stages.run_shard(settings, version, Shard(0, 1), inputs)
    result = stages.finalize(settings, version)
    report = PrecomputeReport(
        version=result.version,
        model_version=inputs.meta.version,
        snapshot_id=inputs.meta.snapshot_id,
        users=result.users,
        removed_versions=result.removed,
        seconds=round(time.perf_counter() - started, 3),
        bytes_per_user=result.bytes_per_user,
    )
    log.info("published %s", report)
    return report


def resolve_model_version(settings: Settings, model_version: str | None) -> str | None:
    """The model to publish: the one asked for; else the production model (the one the gate
    last promoted); before the gate has promoted any, the newest (None), with a warning."""
    if model_version is None:
        production = ModelRegistry(settings.data_dir).production()
        if production is None:
            log.warning("no production model (the gate promoted none): publishing the newest")
        else:
            model_version = production.version
    return model_version


# The same publish split into the steps an orchestrator maps over (the Airflow DAG):
# one ``begin``, one ``publish_shard`` per shard (in any order, retries harmless), one
# ``finalize_publish``. Each takes and returns plain values, so they travel as XComs.


def begin_publish(model_version: str | None = None, shards: int | None = None) -> list[dict]:
    """Open a pending version for the (production) model; returns one job per shard,
    ``{"version": ..., "shard": "i/K"}``, ready to be mapped over."""
    settings = Settings.from_env()
    count = shards or settings.shards
    inputs = stages.Inputs.load(settings, resolve_model_version(settings, model_version))
    version = stages.begin(settings, inputs, shards=count)
    return [{"version": version, "shard": str(shard)} for shard in Shard.all(count)]


def publish_shard(version: str, shard: str) -> dict:
    """Score shard ``"i/K"``'s users with the version's model and write them into it."""
    report = stages.run_shard(Settings.from_env(), version, Shard.parse(shard))
    return {"shard": shard, "users": report.users}


def finalize_publish(version: str) -> dict:
    """Verify every shard and switch the service to ``version`` in one atomic step.

    A retry after the switch (the task died before it could report) finds ``version``
    active and returns what it recorded, rather than failing on a version no longer pending.
    """
    settings = Settings.from_env()
    client = stages.connect(settings)
    try:
        live = publish.status(client)
    finally:
        client.close()
    if live["active"] == version:
        recorded = live["meta"].get("bytes_per_user")
        return {
            "version": version,
            "users": int(live["meta"]["users"]),
            "removed_versions": [],
            "bytes_per_user": float(recorded) if recorded else None,
        }
    result = stages.finalize(settings, version)
    return {
        "version": result.version,
        "users": result.users,
        "removed_versions": result.removed,
        "bytes_per_user": result.bytes_per_user,
    }


# Maintenance, for the same orchestrator (dags/recsys_maintenance.py) and the CLI.


def rollback_published(to: str | None = None) -> str:
    """Switch the service back to ``to`` (a kept version) or to the version published before
    the active one; the versions left are deleted. Returns the version now active."""
    settings = Settings.from_env()
    client = stages.connect(settings)
    try:
        return publish.rollback(client, settings.rollback_grace_seconds, to=to)
    finally:
        client.close()


def prune_versions() -> list[str]:
    """Delete published versions beyond KEEP_VERSIONS that nothing serves; returns them.

    Versions still pending are left alone: one may be a publish in progress (the next
    ``begin`` cleans up those that crashed)."""
    settings = Settings.from_env()
    client = stages.connect(settings)
    try:
        return publish.prune(client, settings.keep_versions)
    finally:
        client.close()
