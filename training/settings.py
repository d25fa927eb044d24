"""Configuration of training, read from the environment in one place.

| variable        | default | meaning                                          |
|-----------------|---------|--------------------------------------------------|
| RECSYS_DATA_DIR | ./var   | root of snapshots (read) and models (written)    |
| SVD_FACTORS     | 64      | latent factors of the SVD model                  |
| SVD_EPOCHS      | 20      | SGD epochs of the SVD model                      |
| TRAINING_SEED   | 42      | seed of every random choice in training          |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ingest.settings import data_dir


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    svd_factors: int
    svd_epochs: int
    seed: int

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            data_dir=data_dir(),
            svd_factors=int(env("SVD_FACTORS", "64")),
            svd_epochs=int(env("SVD_EPOCHS", "20")),
            seed=int(env("TRAINING_SEED", "42")),
        )
