"""Configuration of the experiments CLI (and any task that analyses or steps an experiment),
read from the environment in one place; an empty value counts as unset, and a bad or
out-of-range value raises ``SettingsError`` naming the variable (``contracts.env``).

| variable                 | default                  | meaning                                    |
|--------------------------|--------------------------|--------------------------------------------|
| REDIS_URL                | redis://127.0.0.1:6379/0 | the Redis the service reads its split from |
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

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contracts import locations
from contracts.env import (
    SettingsError,
    environment,
    fraction,
    non_negative_int,
    positive_int,
    read_var,
    share,
)

__all__ = ["Settings", "SettingsError"]


@dataclass(frozen=True)
class Settings:
    report_dir: Path
    redis_url: str = locations.DEFAULT_REDIS_URL
    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.02
    looks: int = 1
    bootstrap: int = 2000
    seed: int = 0
    report_bucket: str = "D"
    bandit_floor: float = 0.05
    bandit_draws: int = 10_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every variable (``os.environ`` unless given); a bad value raises ``SettingsError``."""
        env = environment(environ)
        d = cls(report_dir=locations.data_dir(env) / "experiments")
        return cls(
            report_dir=d.report_dir,
            redis_url=locations.redis_url(env),
            alpha=read_var(env, "EXPERIMENT_ALPHA", fraction, d.alpha),
            power=read_var(env, "EXPERIMENT_POWER", fraction, d.power),
            mde=read_var(env, "EXPERIMENT_MDE", fraction, d.mde),
            looks=read_var(env, "EXPERIMENT_LOOKS", positive_int, d.looks),
            bootstrap=read_var(env, "EXPERIMENT_BOOTSTRAP", positive_int, d.bootstrap),
            seed=read_var(env, "EXPERIMENT_SEED", non_negative_int, d.seed),
            report_bucket=read_var(env, "EXPERIMENT_REPORT_BUCKET", frequency, d.report_bucket),
            bandit_floor=read_var(env, "BANDIT_FLOOR", share, d.bandit_floor),
            bandit_draws=read_var(env, "BANDIT_DRAWS", positive_int, d.bandit_draws),
        )


def frequency(raw: str) -> str:
    """A fixed pandas frequency (D, 6h, 30min, ...); W or M are not fixed and refused."""
    pd.Timestamp(0).floor(raw)  # ValueError unless a fixed frequency
    return raw
