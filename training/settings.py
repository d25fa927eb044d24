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

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts import locations
from contracts.env import (
    SettingsError,
    environment,
    float_at_least,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    read_var,
    share,
)

__all__ = ["Settings", "SettingsError"]


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
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every variable (``os.environ`` unless given); a bad value raises ``SettingsError``."""
        env = environment(environ)
        d = cls(data_dir=Path())
        return cls(
            data_dir=locations.data_dir(env),
            svd_factors=read_var(env, "SVD_FACTORS", positive_int, d.svd_factors),
            svd_epochs=read_var(env, "SVD_EPOCHS", positive_int, d.svd_epochs),
            seed=read_var(env, "TRAINING_SEED", non_negative_int, d.seed),
            neural_hidden=read_var(env, "NEURAL_HIDDEN", positive_int, d.neural_hidden),
            neural_epochs=read_var(env, "NEURAL_EPOCHS", positive_int, d.neural_epochs),
            neural_batch=read_var(env, "NEURAL_BATCH", non_negative_int, d.neural_batch),
            neural_lr=read_var(env, "NEURAL_LR", positive_float, d.neural_lr),
            neural_dropout=read_var(env, "NEURAL_DROPOUT", share, d.neural_dropout),
            neural_weight_decay=read_var(
                env, "NEURAL_WEIGHT_DECAY", non_negative_float, d.neural_weight_decay
            ),
            neural_train_users=read_var(
                env, "NEURAL_TRAIN_USERS", non_negative_int, d.neural_train_users
            ),
            # Any name torch knows (auto, cpu, cuda, cuda:1, mps, ...): torch judges it when a
            # model trains, so a bad one fails the neural model's training alone, not SVD's.
            neural_device=read_var(env, "NEURAL_DEVICE", str, d.neural_device),
            eval_k=read_var(env, "EVAL_K", positive_int, d.eval_k),
            eval_test_share=read_var(env, "EVAL_TEST_SHARE", fraction, d.eval_test_share),
            eval_min_interactions=read_var(
                env, "EVAL_MIN_INTERACTIONS", positive_int, d.eval_min_interactions
            ),
            gate_tolerance=read_var(env, "GATE_TOLERANCE", non_negative_float, d.gate_tolerance),
            gate_min_lift=read_var(env, "GATE_MIN_LIFT", float_at_least(-1.0), d.gate_min_lift),
        )
