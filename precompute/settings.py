"""Configuration of precompute and publish, read from the environment in one place.

| variable               | default              | meaning                                          |
|------------------------|----------------------|--------------------------------------------------|
| RECSYS_DATA_DIR        | ./var                | root of snapshots and models (read)              |
| SNAPSHOT_URI           | (data dir)           | where snapshots live, if not there               |
| REDIS_URL              | redis://127.0.0.1... | where recommendations are published (:6379/0)    |
| PRECOMPUTE_BLOCK_SIZE  | 256                  | users per call of the model's block scorer: big  |
|                        |                      | enough for an efficient product, small enough    |
|                        |                      | (256 x 27k floats = 28 MB < glibc's 32 MB mmap   |
|                        |                      | cap) that its result reuses heap memory instead  |
|                        |                      | of fresh zeroed pages on every call              |
| PRECOMPUTE_THREADS     | CPU count            | blocks scored and selected at once; memory is    |
|                        |                      | about threads x block x movies x 4 bytes, twice  |
| PRECOMPUTE_SHARDS      | 1                    | shards ``begin`` plans when not told (--shards)  |
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts import locations
from contracts.env import (
    SettingsError,
    at_least,
    environment,
    http_url,
    non_negative_float,
    non_negative_int,
    positive_int,
    read_var,
)
from contracts.response import LIST_LENGTH

__all__ = ["Settings", "SettingsError"]

MIN_KEEP_VERSIONS = 2  # the active version and the one a rollback returns to


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    redis_url: str = locations.DEFAULT_REDIS_URL
    block_size: int = 256
    threads: int = 1
    shards: int = 1
    publish_batch: int = 1000
    publish_verify_sample: int = 50
    keep_versions: int = MIN_KEEP_VERSIONS
    rollback_grace_seconds: float = 2.0
    rule_max_per_year: int = 0
    rule_max_per_prefix: int = 0
    rule_prefix_words: int = 2
    rule_pool: int = 3 * LIST_LENGTH
    verify_sample: int = 50
    service_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every variable (``os.environ`` unless given); a bad or out-of-range value raises
        ``SettingsError`` naming it (nothing is clamped: KEEP_VERSIONS=1 is refused)."""
        env = environment(environ)
        d = cls(data_dir=Path())
        return cls(
            data_dir=locations.data_dir(env),
            redis_url=locations.redis_url(env),
            block_size=read_var(env, "PRECOMPUTE_BLOCK_SIZE", positive_int, d.block_size),
            threads=read_var(env, "PRECOMPUTE_THREADS", positive_int, os.cpu_count() or 1),
            shards=read_var(env, "PRECOMPUTE_SHARDS", positive_int, d.shards),
            publish_batch=read_var(env, "PUBLISH_BATCH", positive_int, d.publish_batch),
            publish_verify_sample=read_var(
                env, "PUBLISH_VERIFY_SAMPLE", positive_int, d.publish_verify_sample
            ),
            keep_versions=read_var(
                env, "KEEP_VERSIONS", at_least(MIN_KEEP_VERSIONS), d.keep_versions
            ),
            rollback_grace_seconds=read_var(
                env, "ROLLBACK_GRACE_SECONDS", non_negative_float, d.rollback_grace_seconds
            ),
            rule_max_per_year=read_var(
                env, "RULE_MAX_PER_YEAR", non_negative_int, d.rule_max_per_year
            ),
            rule_max_per_prefix=read_var(
                env, "RULE_MAX_PER_PREFIX", non_negative_int, d.rule_max_per_prefix
            ),
            rule_prefix_words=read_var(env, "RULE_PREFIX_WORDS", positive_int, d.rule_prefix_words),
            rule_pool=read_var(env, "RULE_POOL", at_least(LIST_LENGTH), d.rule_pool),
            verify_sample=read_var(env, "VERIFY_SAMPLE", positive_int, d.verify_sample),
            service_url=read_var(env, "SERVICE_URL", http_url, d.service_url),
        )
