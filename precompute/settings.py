"""Configuration of precompute and publish, read from the environment in one place.

| variable              | default                  | meaning                                       |
|-----------------------|--------------------------|-----------------------------------------------|
| RECSYS_DATA_DIR       | ./var                    | root of snapshots and models (read)           |
| REDIS_URL             | redis://127.0.0.1:6379/0 | where recommendations are published           |
| PRECOMPUTE_BLOCK_SIZE | 2048                     | users per matrix product (bounds memory)      |
| PUBLISH_BATCH         | 5000                     | keys per pipelined round trip                 |
| KEEP_VERSIONS         | 2                        | published versions kept (active + rollback)   |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ingest.settings import data_dir


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    redis_url: str
    block_size: int
    publish_batch: int
    keep_versions: int

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            data_dir=data_dir(),
            redis_url=env("REDIS_URL", "redis://127.0.0.1:6379/0"),
            block_size=int(env("PRECOMPUTE_BLOCK_SIZE", "2048")),
            publish_batch=int(env("PUBLISH_BATCH", "5000")),
            keep_versions=max(2, int(env("KEEP_VERSIONS", "2"))),
        )
