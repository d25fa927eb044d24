"""Configuration of training, evaluation and the gate, read from the environment in one place.

| variable               | default | meaning                                                      |
|------------------------|---------|--------------------------------------------------------------|
| RECSYS_DATA_DIR        | ./var   | root of snapshots (read) and models (written)                |
| TRAINING_SEED          | 42      | seed of every random choice in training and evaluation       |
| SVD_FACTORS            | 64      | latent factors of the SVD model                              |
| SVD_EPOCHS             | 20      | SGD epochs of the SVD model                                  |
| NEURAL_HIDDEN          | 64      | width of the Mult-DAE's user representation                  |
| NEURAL_EPOCHS          | 40      | passes over the training users                               |
| NEURAL_BATCH           | 0       | users per gradient step; 0: auto (500, or fewer so that an   |
|                        |         | epoch of a small snapshot still takes 50 steps)              |
| NEURAL_LR              | 0.001   | Adam learning rate                                           |
| NEURAL_DROPOUT         | 0.5     | share of a user's history hidden from the encoder per step   |
| NEURAL_WEIGHT_DECAY    | 0.0     | L2 penalty on the weights (Adam's weight_decay)              |
| NEURAL_TRAIN_USERS     | 200000  | users the weights learn from, at most (seeded sample); the   |
|                        |         | encoder then embeds every user. 0: no cap                    |
| NEURAL_DEVICE          | auto    | auto (a GPU when torch sees one), cpu, cuda, cuda:1, ...     |
| EVAL_K                 | 20      | list length of the offline metrics                           |
| EVAL_TEST_SHARE        | 0.2     | each user's latest share of interactions held out            |
| EVAL_MIN_INTERACTIONS  | 5       | users with fewer distinct movies are train-only              |
| GATE_TOLERANCE         | 0.02    | candidate may trail production's NDCG@k by this share        |
| GATE_MIN_LIFT          | 0.10    | candidate must beat popularity's NDCG@k by this share        |

The neural defaults follow Liang et al. (2018), Mult-DAE, with three changes measured on the
simulator's worlds (docs/BENCHMARKS.md): a narrower hidden layer (64, not 200: 200 overfits
snapshots of a few thousand users and costs 3x more at a million), smaller batches on small
snapshots (see NEURAL_BATCH), and the user cap, which bounds a daily retrain at a million
users: the item-side weights stop improving long before every user has been seen, and the
encoder embeds users it never trained on for free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from contracts.locations import data_dir


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    svd_factors: int = 64
    svd_epochs: int = 20
    seed: int = 42
    neural_hidden: int = 64
    neural_epochs: int = 40
    neural_batch: int = 0
    neural_lr: float = 1e-3
    neural_dropout: float = 0.5
    neural_weight_decay: float = 0.0
    neural_train_users: int = 200_000
    neural_device: str = "auto"
    eval_k: int = 20
    eval_test_share: float = 0.2
    eval_min_interactions: int = 5
    gate_tolerance: float = 0.02
    gate_min_lift: float = 0.10

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            data_dir=data_dir(),
            svd_factors=int(env("SVD_FACTORS", "64")),
            svd_epochs=int(env("SVD_EPOCHS", "20")),
            seed=int(env("TRAINING_SEED", "42")),
            neural_hidden=int(env("NEURAL_HIDDEN", "64")),
            neural_epochs=int(env("NEURAL_EPOCHS", "40")),
            neural_batch=int(env("NEURAL_BATCH", "0")),
            neural_lr=float(env("NEURAL_LR", "0.001")),
            neural_dropout=float(env("NEURAL_DROPOUT", "0.5")),
            neural_weight_decay=float(env("NEURAL_WEIGHT_DECAY", "0.0")),
            neural_train_users=int(env("NEURAL_TRAIN_USERS", "200000")),
            neural_device=env("NEURAL_DEVICE", "auto"),
            eval_k=int(env("EVAL_K", "20")),
            eval_test_share=float(env("EVAL_TEST_SHARE", "0.2")),
            eval_min_interactions=int(env("EVAL_MIN_INTERACTIONS", "5")),
            gate_tolerance=float(env("GATE_TOLERANCE", "0.02")),
            gate_min_lift=float(env("GATE_MIN_LIFT", "0.10")),
        )
