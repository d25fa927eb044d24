"""Configuration of precompute and publish, read from the environment in one place.

| variable               | default              | meaning                                          |
|------------------------|----------------------|--------------------------------------------------|
| RECSYS_DATA_DIR        | ./var                | root of snapshots and models (read)              |
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
| PUBLISH_VERIFY_SAMPLE  | 50                   | bodies per shard read back and compared          |
| KEEP_VERSIONS          | 2                    | published versions kept (active + rollback), >=2 |
| ROLLBACK_GRACE_SECONDS | 2.0                  | a rollback deletes the version it leaves only    |
|                        |                      | this long after the switch, so services that     |
|                        |                      | cached it (VERSION_REFRESH_SECONDS, 1 s) never   |
|                        |                      | read a half-deleted version                      |
| RULE_MAX_PER_YEAR      | 0                    | at most this many movies of one release year     |
|                        |                      | per list (0: no rule)                            |
| RULE_MAX_PER_PREFIX    | 0                    | at most this many movies sharing the first       |
|                        |                      | RULE_PREFIX_WORDS title words (a franchise)      |
| RULE_PREFIX_WORDS      | 2                    | words that make the franchise prefix             |
| RULE_POOL              | 60                   | best candidates the rules choose 20 from         |
| VERIFY_SAMPLE          | 50                   | users whose lists ``precompute.verify`` reads    |
|                        |                      | back after the switch                            |
| SERVICE_URL            | (unset)              | the lookup service (http://host:8082); when set, |
|                        |                      | verify also asks it for those users              |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from contracts.locations import data_dir


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    redis_url: str = "redis://127.0.0.1:6379/0"
    block_size: int = 256
    threads: int = 1
    shards: int = 1
    publish_batch: int = 1000
    verify_sample: int = 50
    keep_versions: int = 2
    rollback_grace_seconds: float = 2.0
    rule_max_per_year: int = 0
    rule_max_per_prefix: int = 0
    rule_prefix_words: int = 2
    rule_pool: int = 60
    verify_users: int = 50
    service_url: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            data_dir=data_dir(),
            redis_url=env("REDIS_URL", "redis://127.0.0.1:6379/0"),
            block_size=_positive(env("PRECOMPUTE_BLOCK_SIZE", "256")),
            threads=_positive(env("PRECOMPUTE_THREADS", str(os.cpu_count() or 1))),
            shards=_positive(env("PRECOMPUTE_SHARDS", "1")),
            publish_batch=_positive(env("PUBLISH_BATCH", "1000")),
            verify_sample=_positive(env("PUBLISH_VERIFY_SAMPLE", "50")),
            keep_versions=max(2, int(env("KEEP_VERSIONS", "2"))),
            rollback_grace_seconds=max(0.0, float(env("ROLLBACK_GRACE_SECONDS", "2.0"))),
            rule_max_per_year=max(0, int(env("RULE_MAX_PER_YEAR", "0"))),
            rule_max_per_prefix=max(0, int(env("RULE_MAX_PER_PREFIX", "0"))),
            rule_prefix_words=_positive(env("RULE_PREFIX_WORDS", "2")),
            rule_pool=_positive(env("RULE_POOL", "60")),
            verify_users=_positive(env("VERIFY_SAMPLE", "50")),
            service_url=env("SERVICE_URL") or None,
        )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value
