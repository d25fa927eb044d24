"""Configuration of the experiments CLI (and any task that analyses or steps an experiment),
read from the environment in one place; an empty value counts as unset.

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

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contracts.locations import data_dir
from service.settings import SettingsError, positive_int, read_var

__all__ = ["Settings", "SettingsError"]


@dataclass(frozen=True)
class Settings:
    report_dir: Path
    redis_url: str = "redis://127.0.0.1:6379/0"
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
        env = os.environ if environ is None else environ
        d = cls(report_dir=data_dir() / "experiments")
        return cls(
            report_dir=d.report_dir,
            redis_url=read_var(env, "REDIS_URL", str, d.redis_url),
            alpha=read_var(env, "EXPERIMENT_ALPHA", _open_unit, d.alpha),
            power=read_var(env, "EXPERIMENT_POWER", _open_unit, d.power),
            mde=read_var(env, "EXPERIMENT_MDE", _open_unit, d.mde),
            looks=read_var(env, "EXPERIMENT_LOOKS", positive_int, d.looks),
            bootstrap=read_var(env, "EXPERIMENT_BOOTSTRAP", positive_int, d.bootstrap),
            seed=read_var(env, "EXPERIMENT_SEED", _non_negative_int, d.seed),
            report_bucket=read_var(env, "EXPERIMENT_REPORT_BUCKET", _frequency, d.report_bucket),
            bandit_floor=read_var(env, "BANDIT_FLOOR", _share, d.bandit_floor),
            bandit_draws=read_var(env, "BANDIT_DRAWS", positive_int, d.bandit_draws),
        )


def _open_unit(raw: str) -> float:
    value = float(raw)
    if not 0 < value < 1:
        raise ValueError("must lie strictly between 0 and 1")
    return value


def _share(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < 1:
        raise ValueError("must be a share in [0, 1)")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _frequency(raw: str) -> str:
    pd.Timestamp(0).floor(raw)  # ValueError unless a fixed frequency (D, 6h, 30min, ...)
    return raw
