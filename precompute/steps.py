"""What the CLI and the DAGs run: a model's lists published in three steps, or in one call,
and the published versions' upkeep. Each function reads ``Settings`` (from the environment
when not given) and opens its own Redis client (``redisclient.connect``).

The publish, as three steps a scheduler can run apart: ``begin`` opens a pending version for
a model (the production one by default); ``write_shard`` scores one shard's users (see
``shard``) into it, on any worker, any number of times; ``finalize`` verifies every shard and
switches. The Airflow DAG maps ``write_shard`` over the shards (``python -m precompute
begin``, ``write-shard``, ``finalize`` do the same from a shell). Each step loads what it
needs itself (model, its training snapshot), so no state passes between them but the version
name and the shard; ``publish`` runs all three in one process, sharing the load. The Redis
side of each step is ``precompute.publish``.

Upkeep, for ``dags/recsys_maintenance.py`` and the CLI: ``rollback``, ``prune``, ``status``
(``precompute.versions`` on a client of their own).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from contracts import rediskeys
from ingest.progress import Progress
from ingest.snapshot import open_store
from precompute import publish as protocol
from precompute import versions
from precompute.bodies import body_blocks, cold_start_body
from precompute.devicescoring import resolve
from precompute.redisclient import Client, connect
from precompute.rules import Rule, rules_from_settings
from precompute.settings import Settings
from precompute.shard import Shard, rows_of
from precompute.versions import PublishError
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
        """``model_version`` None: the production model (the one the gate last promoted);
        before the gate has promoted any, the newest, with a warning."""
        registry = ModelRegistry(settings.data_dir)
        if model_version is None:
            production = registry.production()
            if production is None:
                log.warning("no production model (the gate promoted none): publishing the newest")
            else:
                model_version = production.version
        model, meta = registry.load(model_version)
        snapshot = open_store(settings.data_dir).load(meta.snapshot_id)
        return cls(model, meta, Interactions.from_snapshot(snapshot))

    def rules(self, settings: Settings) -> list[Rule]:
        return rules_from_settings(settings, self.data.item_ids)


# --- the publish: begin, write_shard (once per shard), finalize ------------------------------


@dataclass(frozen=True)
class Begun:
    """A pending version, and what it was opened for."""

    version: str
    model_version: str
    shards: int

    def jobs(self) -> list[dict]:
        """One ``write_shard`` call's arguments per shard, ``{"version": ..., "shard": "i/K"}``:
        plain values, ready to be mapped over (Airflow XComs)."""
        return [{"version": self.version, "shard": str(shard)} for shard in Shard.all(self.shards)]

    def as_dict(self) -> dict:
        return asdict(self)


def begin(
    model_version: str | None = None,
    shards: int | None = None,
    settings: Settings | None = None,
    *,
    inputs: Inputs | None = None,
) -> Begun:
    """Open a pending version for the model (default: production, see ``Inputs.load``),
    to be written in ``shards`` shards (default PRECOMPUTE_SHARDS).

    ``inputs``: the model and snapshot already loaded (``publish`` shares them with its one
    shard) instead of ``model_version``.
    """
    settings = settings or Settings.from_env()
    if inputs is None:
        inputs = Inputs.load(settings, model_version)
    elif model_version not in (None, inputs.meta.version):
        raise ValueError(f"model {model_version} asked, {inputs.meta.version} loaded")
    count = shards or settings.shards
    rules = inputs.rules(settings)
    meta = {
        "model_version": inputs.meta.version,
        "algorithm": inputs.meta.algorithm,
        "snapshot_id": inputs.meta.snapshot_id,
        "code_version": inputs.meta.code_version,
        "rules": ",".join(map(str, rules)) or "none",
    }
    with connect(settings) as client:
        version = protocol.begin(
            client,
            meta=meta,
            default_body=cold_start_body(inputs.data, rules, settings.rule_pool),
            users=inputs.data.n_users,
            shards=count,
        )
    log.info("begin %s: %s, %d users in %d shards", version, meta, inputs.data.n_users, count)
    return Begun(version, inputs.meta.version, count)


def write_shard(
    version: str,
    shard: Shard | str,
    settings: Settings | None = None,
    *,
    inputs: Inputs | None = None,
) -> protocol.ShardReport:
    """Score ``shard``'s users (a ``Shard`` or ``"i/K"``) with the model pending ``version``
    was begun for, and write them into it. A retry rewrites the same keys.

    ``inputs``: that model and its snapshot already loaded (``publish``).
    """
    started = time.perf_counter()
    settings = settings or Settings.from_env()
    shard = Shard.parse(shard) if isinstance(shard, str) else shard
    with connect(settings) as client:
        inputs = inputs or Inputs.load(settings, _model_of(client, version))
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
            device=resolve(settings.device),
        )
        with Progress(f"precompute {shard}", total=len(users), unit="users", log=log) as progress:
            report = protocol.write_shard(
                client,
                version,
                shard,
                progress.track(blocks, size=lambda block: len(block[0])),
                expected=len(users),
                model_version=inputs.meta.version,
                batch=settings.publish_batch,
                sample=settings.publish_verify_sample,
            )
    log.info(
        "write_shard %s of %s: %d users in %.1fs",
        shard,
        version,
        report.users,
        time.perf_counter() - started,
    )
    return report


def finalize(version: str, settings: Settings | None = None) -> protocol.Published:
    """Verify every shard of ``version`` and make it the one the service answers from, in
    one atomic step; then prune to KEEP_VERSIONS.

    A retry after the switch (the task died before it could report) finds ``version``
    active and returns what it recorded (nothing removed), rather than failing on a version
    no longer pending; any other version that is not pending is refused.
    """
    settings = settings or Settings.from_env()
    with connect(settings) as client:
        if versions.active(client) == version:
            recorded = versions.meta(client, version)
            per_user = recorded.get("bytes_per_user")
            return protocol.Published(
                version, int(recorded["users"]), [], float(per_user) if per_user else None
            )
        result = protocol.finalize(client, version, keep=settings.keep_versions)
    log.info("finalize %s: published (%d users, removed %s)", version, result.users, result.removed)
    return result


def _model_of(client: Client, version: str) -> str:
    """The model a pending version was begun for (what every shard must score with)."""
    value = client.hget(rediskeys.meta(version), "model_version")
    if value is None:
        raise PublishError(f"no version {version} in Redis (begin it first)")
    return versions.as_text(value)


# --- the whole publish in one process ---------------------------------------------------------


@dataclass(frozen=True)
class PublishReport:
    version: str
    model_version: str
    snapshot_id: str
    users: int
    removed_versions: list[str]
    seconds: float
    bytes_per_user: float | None = None  # Redis memory the version added, per user

    def as_dict(self) -> dict:
        return asdict(self)


def publish(model_version: str | None = None, settings: Settings | None = None) -> PublishReport:
    """Score every user of the model's training snapshot and publish the lists atomically:
    ``begin``, one ``write_shard`` holding every user, ``finalize``, the model and snapshot
    loaded once. Without ``model_version``, the production model (see ``Inputs.load``)."""
    settings = settings or Settings.from_env()
    started = time.perf_counter()
    inputs = Inputs.load(settings, model_version)
    begun = begin(shards=1, settings=settings, inputs=inputs)
    write_shard(begun.version, Shard(0, 1), settings, inputs=inputs)
    result = finalize(begun.version, settings)
    report = PublishReport(
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


# --- upkeep of the published versions ---------------------------------------------------------


def rollback(to: str | None = None, settings: Settings | None = None) -> str:
    """Switch the service back to ``to`` (a kept version) or to the version published before
    the active one; the versions left are deleted after ROLLBACK_GRACE_SECONDS. Returns the
    version now active."""
    settings = settings or Settings.from_env()
    with connect(settings) as client:
        return versions.rollback(client, settings.rollback_grace_seconds, to=to)


def prune(settings: Settings | None = None) -> list[str]:
    """Delete published versions beyond KEEP_VERSIONS that nothing serves; returns them.

    Versions still pending are left alone: one may be a publish in progress (the next
    ``begin`` cleans up those that crashed)."""
    settings = settings or Settings.from_env()
    with connect(settings) as client:
        return versions.prune(client, settings.keep_versions)


def status(settings: Settings | None = None) -> dict:
    """What is served and kept, with each version's metadata (``versions.status``)."""
    settings = settings or Settings.from_env()
    with connect(settings) as client:
        return versions.status(client)
