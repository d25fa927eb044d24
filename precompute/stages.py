"""The publish as three steps a scheduler can run apart: begin, one task per shard, finalize.

``python -m precompute begin`` opens a pending version for a model and prints its name;
``python -m precompute run --shard i/K --version V`` scores shard i's users (see ``shard``)
into it, on any worker; ``python -m precompute finalize --version V`` verifies every shard
and switches. An Airflow DAG maps the middle step over ``range(K)``. Each step loads what it
needs itself (model, its training snapshot), so no state passes between them but the
version name; ``job.precompute_and_publish`` runs all three in one process, sharing the load.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from contracts import rediskeys
from ingest.snapshot import open_store
from precompute import publish
from precompute.bodies import body_blocks, cold_start_body
from precompute.rules import Rule, rules_from_settings
from precompute.settings import Settings
from precompute.shard import Shard, rows_of
from training.factors import FactorModel
from training.interactions import Interactions
from training.registry import ModelMeta, ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """A registered model and the snapshot it was trained on, indexed."""

    model: FactorModel
    meta: ModelMeta
    data: Interactions

    @classmethod
    def load(cls, settings: Settings, model_version: str | None) -> Inputs:
        """``model_version`` None: the newest model."""
        model, meta = ModelRegistry(settings.data_dir).load(model_version)
        snapshot = open_store(settings.data_dir).load(meta.snapshot_id)
        return cls(model, meta, Interactions.from_snapshot(snapshot))

    def rules(self, settings: Settings) -> list[Rule]:
        return rules_from_settings(settings, self.data.item_ids)


def connect(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def begin(settings: Settings, inputs: Inputs, shards: int) -> str:
    """Open a pending version for ``inputs``; returns its name."""
    rules = inputs.rules(settings)
    meta = {
        "model_version": inputs.meta.version,
        "algorithm": inputs.meta.algorithm,
        "snapshot_id": inputs.meta.snapshot_id,
        "code_version": inputs.meta.code_version,
        "rules": ",".join(map(str, rules)) or "none",
    }
    client = connect(settings)
    try:
        version = publish.begin(
            client,
            meta=meta,
            default_body=cold_start_body(inputs.data, rules, settings.rule_pool),
            users=inputs.data.n_users,
            shards=shards,
        )
    finally:
        client.close()
    log.info("began %s: %s, %d users in %d shards", version, meta, inputs.data.n_users, shards)
    return version


def model_of(settings: Settings, version: str) -> str:
    """The model a pending version was opened for (what every shard must score with)."""
    client = connect(settings)
    try:
        value = client.hget(rediskeys.meta(version), "model_version")
    finally:
        client.close()
    if value is None:
        raise publish.PublishError(f"no version {version} in Redis (begin it first)")
    return value.decode()


def run_shard(
    settings: Settings, version: str, shard: Shard, inputs: Inputs | None = None
) -> publish.ShardReport:
    """Score shard ``shard``'s users with the version's model and write them into it."""
    started = time.perf_counter()
    inputs = inputs or Inputs.load(settings, model_of(settings, version))
    data = inputs.data
    users = rows_of(data.user_ids, shard)
    blocks = body_blocks(
        inputs.model,
        data,
        users=users,
        block_size=settings.block_size,
        threads=settings.threads,
        rules=inputs.rules(settings),
        pool=settings.rule_pool,
    )
    client = connect(settings)
    try:
        report = publish.write_shard(
            client,
            version,
            shard,
            blocks,
            expected=len(users),
            model_version=inputs.meta.version,
            batch=settings.publish_batch,
            sample=settings.verify_sample,
        )
    finally:
        client.close()
    log.info(
        "shard %s of %s: %d users in %.1fs",
        shard,
        version,
        report.users,
        time.perf_counter() - started,
    )
    return report


def finalize(settings: Settings, version: str) -> publish.Published:
    """Verify every shard of ``version`` and make it the one the service answers from."""
    client = connect(settings)
    try:
        result = publish.finalize(client, version, keep=settings.keep_versions)
    finally:
        client.close()
    log.info("published %s (%d users, removed %s)", version, result.users, result.removed)
    return result
