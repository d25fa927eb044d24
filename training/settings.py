"""Configuration of training, evaluation and the gate, read from the environment in one place.

| variable               | default | meaning                                                      |
|------------------------|---------|--------------------------------------------------------------|
| RECSYS_DATA_DIR        | ./var   | root of snapshots (read) and models (written)                |
| SNAPSHOT_URI           | (dir)   | where snapshots live, if not there (a path or s3://...)      |
| TRAINING_SEED          | 42      | seed of every random choice in training and evaluation (>=0) |
| SVD_FACTORS            | 64      | latent factors of the SVD model (>= 1)                       |
| SVD_EPOCHS             | 20      | SGD epochs of the SVD model (>= 1)                           |
| NEURAL_HIDDEN          | 64      | width of the Mult-DAE's user representation (>= 1)           |
| NEURAL_EPOCHS          | 40      | passes over the training users (>= 1)                        |
| NEURAL_BATCH           | 0       | users per gradient step; 0: auto (500, or fewer so that an   |
|                        |         | epoch of a small snapshot still takes 50 steps)              |
| NEURAL_LR              | 0.001   | Adam learning rate (> 0)                                     |
| NEURAL_DROPOUT         | 0.5     | share of a user's history hidden from the encoder per step,  |
|                        |         | 0 <= x < 1                                                   |
| NEURAL_WEIGHT_DECAY    | 0.0     | L2 penalty on the weights (Adam's weight_decay), >= 0        |
| NEURAL_TRAIN_USERS     | 200000  | users the weights learn from, at most (seeded sample); the   |
|                        |         | encoder then embeds every user. 0: no cap                    |
| NEURAL_DEVICE          | auto    | auto (a GPU when torch sees one), cpu, cuda, cuda:1, ...     |
| EVAL_K                 | 20      | list length of the offline metrics (>= 1)                    |
| EVAL_TEST_SHARE        | 0.2     | each user's latest share of interactions held out, 0 < x < 1 |
| EVAL_MIN_INTERACTIONS  | 5       | users with fewer distinct movies are train-only (>= 1)       |
| GATE_TOLERANCE         | 0.02    | candidate may trail production's NDCG@k by this share (>= 0) |
| GATE_MIN_LIFT          | 0.10    | candidate must beat popularity's NDCG@k by this share (>= -1;|
|                        |         | negative: may trail it by that much)                         |

An empty value counts as unset; a bad or out-of-range value raises ``SettingsError`` naming
the variable (``contracts.env``).

The neural defaults follow Liang et al. (2018), Mult-DAE, with three changes measured on the
simulator's worlds (docs/BENCHMARKS.md): a narrower hidden layer (64, not 200: 200 overfits
snapshots of a few thousand users and costs 3x more at a million), smaller batches on small
snapshots (see NEURAL_BATCH), and the user cap, which bounds a daily retrain at a million
users: the item-side weights stop improving long before every user has been seen, and the
encoder embeds users it never trained on for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contracts import locations
from contracts.env import (
    FromEnv,
    SettingsError,
    float_at_least,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    share,
    var,
)

__all__ = ["Settings", "SettingsError"]


@dataclass(frozen=True)
class Settings(FromEnv):
    data_dir: Path = locations.DATA_DIR.field(required=True)
    svd_factors: int = var("SVD_FACTORS", positive_int, 64)
    svd_epochs: int = var("SVD_EPOCHS", positive_int, 20)
    seed: int = var("TRAINING_SEED", non_negative_int, 42)
    neural_hidden: int = var("NEURAL_HIDDEN", positive_int, 64)
    neural_epochs: int = var("NEURAL_EPOCHS", positive_int, 40)
    neural_batch: int = var("NEURAL_BATCH", non_negative_int, 0)
    neural_lr: float = var("NEURAL_LR", positive_float, 1e-3)
    neural_dropout: float = var("NEURAL_DROPOUT", share, 0.5)
    neural_weight_decay: float = var("NEURAL_WEIGHT_DECAY", non_negative_float, 0.0)
    neural_train_users: int = var("NEURAL_TRAIN_USERS", non_negative_int, 200_000)
    # Any name torch knows (auto, cpu, cuda, cuda:1, mps, ...): torch judges it when a model
    # trains, so a bad one fails the neural model's training alone, not SVD's.
    neural_device: str = var("NEURAL_DEVICE", str, "auto")
    eval_k: int = var("EVAL_K", positive_int, 20)
    eval_test_share: float = var("EVAL_TEST_SHARE", fraction, 0.2)
    eval_min_interactions: int = var("EVAL_MIN_INTERACTIONS", positive_int, 5)
    gate_tolerance: float = var("GATE_TOLERANCE", non_negative_float, 0.02)
    gate_min_lift: float = var("GATE_MIN_LIFT", float_at_least(-1.0), 0.10)
