"""Configuration of precompute and publish, read from the environment in one place.

| variable               | default              | meaning                                          |
|------------------------|----------------------|--------------------------------------------------|
| RECSYS_DATA_DIR        | ./var                | root of snapshots and models (read)              |
| SNAPSHOT_URI           | (data dir)           | where snapshots live, if not there               |
| REDIS_URL              | redis://127.0.0.1... | where recommendations are published (:6379/0)    |
| REDIS_MODE             | single               | single, cluster or sentinel: how REDIS_URL is    |
|                        |                      | read (``contracts.locations.RedisTopology``)     |
| REDIS_CLUSTER_NODES    | (unset)              | cluster: more startup nodes, host:port,...       |
| REDIS_SENTINELS        | (unset)              | sentinel: the sentinels, host:port,...           |
| REDIS_SENTINEL_MASTER  | recsys               | sentinel: the name of the monitored primary      |
| PRECOMPUTE_BLOCK_SIZE  | 256                  | users per call of the model's block scorer: big  |
|                        |                      | enough for an efficient product, small enough    |
|                        |                      | (256 x 27k floats = 28 MB < glibc's 32 MB mmap   |
|                        |                      | cap) that its result reuses heap memory instead  |
|                        |                      | of fresh zeroed pages on every call              |
| PRECOMPUTE_THREADS     | CPU count            | blocks scored and selected at once; memory is    |
|                        |                      | about threads x block x movies x 4 bytes, twice  |
| PRECOMPUTE_SHARDS      | 1                    | shards ``begin`` plans when not told (--shards)  |
| PRECOMPUTE_DEVICE      | auto                 | where a block is scored, excluded and selected:  |
|                        |                      | ``numpy``, or torch on ``cpu`` / ``cuda``;       |
|                        |                      | ``auto`` is cuda when torch sees a GPU, else     |
|                        |                      | numpy (same lists either way; raise              |
|                        |                      | PRECOMPUTE_BLOCK_SIZE to ~8192 on a GPU)         |
| PUBLISH_BATCH          | 1000                 | users per MSET round trip                        |
| PUBLISH_VERIFY_SAMPLE  | 50                   | bodies per shard read back and compared after    |
|                        |                      | writing it (``publish_verify_sample``)           |
| KEEP_VERSIONS          | 2                    | published versions kept (active + rollback), >=2 |
|                        |                      | (1 is refused, not raised to 2)                  |
| ROLLBACK_GRACE_SECONDS | 2.0                  | a rollback deletes the version it leaves only    |
|                        |                      | this long after the switch, so services that     |
|                        |                      | cached it (VERSION_REFRESH_SECONDS, 1 s) never   |
|                        |                      | read a half-deleted version (seconds, >= 0)      |
| RULE_MAX_PER_YEAR      | 0                    | at most this many movies of one release year     |
|                        |                      | per list (0: no rule)                            |
| RULE_MAX_PER_PREFIX    | 0                    | at most this many movies sharing the first       |
|                        |                      | RULE_PREFIX_WORDS title words (a franchise)      |
| RULE_PREFIX_WORDS      | 2                    | words that make the franchise prefix             |
| RULE_POOL              | 60                   | best candidates the rules choose 20 from (>= 20) |
| VERIFY_SAMPLE          | 50                   | users whose lists ``precompute.verify`` reads    |
|                        |                      | back after the switch (``verify_sample``)        |
| SERVICE_URL            | (unset)              | the lookup service (http://host:8082); when set, |
|                        |                      | verify also asks it for those users              |

Counts are integers >= 1 unless the table says otherwise (RULE_MAX_* >= 0); an empty value
counts as unset; a bad or out-of-range value raises ``SettingsError`` naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from contracts import locations
from contracts.env import (
    FromEnv,
    SettingsError,
    at_least,
    choice,
    http_url,
    nested,
    non_negative_float,
    non_negative_int,
    positive_int,
    var,
)
from contracts.response import LIST_LENGTH

__all__ = ["Settings", "SettingsError"]

DEVICES = ("auto", "numpy", "cpu", "cuda")  # PRECOMPUTE_DEVICE (precompute.devicescoring)
MIN_KEEP_VERSIONS = 2  # the active version and the one a rollback returns to


@dataclass(frozen=True)
class Settings(FromEnv):
    data_dir: Path = locations.DATA_DIR.field(required=True)
    redis_url: str = locations.REDIS_URL.field()
    redis_topology: locations.RedisTopology = nested(locations.RedisTopology)
    block_size: int = var("PRECOMPUTE_BLOCK_SIZE", positive_int, 256)
    threads: int = var("PRECOMPUTE_THREADS", positive_int, os.cpu_count() or 1, in_code=1)
    shards: int = var("PRECOMPUTE_SHARDS", positive_int, 1)
    device: str = var("PRECOMPUTE_DEVICE", choice(*DEVICES), "auto")
    publish_batch: int = var("PUBLISH_BATCH", positive_int, 1000)
    publish_verify_sample: int = var("PUBLISH_VERIFY_SAMPLE", positive_int, 50)
    # Nothing is clamped: KEEP_VERSIONS=1 is refused, not raised to 2.
    keep_versions: int = var("KEEP_VERSIONS", at_least(MIN_KEEP_VERSIONS), MIN_KEEP_VERSIONS)
    rollback_grace_seconds: float = var("ROLLBACK_GRACE_SECONDS", non_negative_float, 2.0)
    rule_max_per_year: int = var("RULE_MAX_PER_YEAR", non_negative_int, 0)
    rule_max_per_prefix: int = var("RULE_MAX_PER_PREFIX", non_negative_int, 0)
    rule_prefix_words: int = var("RULE_PREFIX_WORDS", positive_int, 2)
    rule_pool: int = var("RULE_POOL", at_least(LIST_LENGTH), 3 * LIST_LENGTH)
    verify_sample: int = var("VERIFY_SAMPLE", positive_int, 50)
    service_url: str | None = var("SERVICE_URL", http_url)
