"""Configuration of the experiments CLI (and any task that analyses or steps an experiment),
read from the environment in one place; an empty value counts as unset, and a bad or
out-of-range value raises ``SettingsError`` naming the variable (``contracts.env``).

| variable                 | default                  | meaning                                    |
|--------------------------|--------------------------|--------------------------------------------|
| REDIS_URL                | redis://127.0.0.1:6379/0 | the Redis the service reads its split from |
| REDIS_MODE               | single                   | single, cluster or sentinel: how REDIS_URL |
|                          |                          | is read (contracts.locations)              |
| REDIS_CLUSTER_NODES      | (unset)                  | cluster: more startup nodes, host:port,... |
| REDIS_SENTINELS          | (unset)                  | sentinel: the sentinels, host:port,...     |
| REDIS_SENTINEL_MASTER    | recsys                   | sentinel: the monitored primary's name     |
| RECSYS_DATA_DIR          | ./var                    | reports go to <it>/experiments unless      |
|                          |                          | `report --out DIR` says otherwise          |
| EXPERIMENT_ALPHA         | 0.05                     | family-wise false-positive rate of a       |
|                          |                          | verdict (split over treatments and looks)  |
| EXPERIMENT_POWER         | 0.8                      | chance to detect an effect of EXPERIMENT_  |
|                          |                          | MDE; sets the planned sample size          |
| EXPERIMENT_MDE           | 0.02                     | minimum detectable effect: an absolute     |
|                          |                          | difference in per-user conversion (0.02 =  |
|                          |                          | 2 percentage points)                       |
| EXPERIMENT_LOOKS         | 1                        | analyses you will act on; each one beyond  |
|                          |                          | the first inflates the false-positive rate |
|                          |                          | unless alpha is split over them (a daily   |
|                          |                          | task for two weeks: 14)                    |
| EXPERIMENT_BOOTSTRAP     | 2000                     | bootstrap resamples per comparison         |
| EXPERIMENT_SEED          | 0                        | seed of the bootstrap and bandit draws     |
| EXPERIMENT_REPORT_BUCKET | D                        | time bucket of the report's curves: a      |
|                          |                          | fixed pandas frequency (D, 6h, h, 30min)   |
| BANDIT_FLOOR             | 0.05                     | least share of traffic every bandit arm    |
|                          |                          | keeps, so a loser can still recover        |
| BANDIT_DRAWS             | 10000                    | posterior draws per bandit step            |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contracts import locations
from contracts.env import (
    FromEnv,
    SettingsError,
    fraction,
    nested,
    non_negative_int,
    positive_int,
    share,
    var,
)

__all__ = ["Settings", "SettingsError"]


def frequency(raw: str) -> str:
    """A fixed pandas frequency (D, 6h, 30min, ...); W or M are not fixed and refused."""
    pd.Timestamp(0).floor(raw)  # ValueError unless a fixed frequency
    return raw


@dataclass(frozen=True)
class Settings(FromEnv):
    report_dir: Path = locations.data_dir_var("experiments").field(required=True)
    redis_url: str = locations.REDIS_URL.field()
    redis_topology: locations.RedisTopology = nested(locations.RedisTopology)
    alpha: float = var("EXPERIMENT_ALPHA", fraction, 0.05)
    power: float = var("EXPERIMENT_POWER", fraction, 0.8)
    mde: float = var("EXPERIMENT_MDE", fraction, 0.02)
    looks: int = var("EXPERIMENT_LOOKS", positive_int, 1)
    bootstrap: int = var("EXPERIMENT_BOOTSTRAP", positive_int, 2000)
    seed: int = var("EXPERIMENT_SEED", non_negative_int, 0)
    report_bucket: str = var("EXPERIMENT_REPORT_BUCKET", frequency, "D")
    bandit_floor: float = var("BANDIT_FLOOR", share, 0.05)
    bandit_draws: int = var("BANDIT_DRAWS", positive_int, 10_000)
