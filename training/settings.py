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
| NEURAL_VALUE           | binary  | the history the encoder embeds users from (the weights learn |
| NEURAL_RECENCY         | relrank | from the plain one): value binary or rating, recency         |
| NEURAL_RECENCY_TAU     | 0.2     | none, rank, relrank or time, tau (> 0: movies, share of the  |
| NEURAL_RECENCY_FLOOR   | 0.0     | history, or days) and floor (0 <= x < 1): training.weighting |
| EASE_LAMBDA            | 841     | EASE's L2 penalty on the item-item weights (> 0)             |
| EASE_POP_EXPONENT      | 0.241   | scores divided by popularity^x (any number; 0: none)         |
| EASE_RANK              | 128     | width of EASE's factors (>= 1); the catalogue's size or more |
|                        |         | keeps the exact item-item matrix                             |
| EASE_VALUE             | rating  | the history EASE scores (it learns from the plain one):      |
| EASE_RECENCY           | rank    | as NEURAL_VALUE, NEURAL_RECENCY, ...                         |
| EASE_RECENCY_TAU       | 8.1     |                                                              |
| EASE_RECENCY_FLOOR     | 0.0207  |                                                              |
| PURESVD_FACTORS        | 33      | rank of the top-N SVD (>= 1)                                 |
| PURESVD_POP_NORM       | 0.127   | columns scaled by popularity^-x before the SVD (any number)  |
| PURESVD_VALUE          | rating  | the history folded in (the SVD is of the plain one):         |
| PURESVD_RECENCY        | relrank | as NEURAL_VALUE, NEURAL_RECENCY, ...                         |
| PURESVD_RECENCY_TAU    | 0.169   |                                                              |
| PURESVD_RECENCY_FLOOR  | 0.0068  |                                                              |
| IALS_FACTORS           | 16      | latent factors of iALS (>= 1)                                |
| IALS_REGULARIZATION    | 5.74    | its L2 penalty (>= 0)                                        |
| IALS_ALPHA             | 5.01    | confidence 1 + alpha * x of a seen movie (>= 0)              |
| IALS_ITERATIONS        | 10      | alternating least-squares sweeps (>= 1)                      |
| IALS_VALUE             | binary  | the history users are folded in from (the item factors learn |
| IALS_RECENCY           | time    | from the plain one): as NEURAL_VALUE, NEURAL_RECENCY, ...    |
| IALS_RECENCY_TAU       | 0.00807 |                                                              |
| IALS_RECENCY_FLOOR     | 0.0189  |                                                              |
| TUNED_PARAMS           | (none)  | a ``python -m training.tune`` result: the models it names    |
|                        |         | train with its chosen values instead of the ones above       |
| EVAL_K                 | 20      | list length of the offline metrics (>= 1)                    |
| EVAL_TEST_SHARE        | 0.2     | each user's latest share of interactions held out, 0 < x < 1 |
| EVAL_MIN_INTERACTIONS  | 5       | users with fewer distinct movies are train-only (>= 1)       |
| GATE_TOLERANCE         | 0.02    | candidate may trail production's NDCG@k by this share (>= 0) |
| GATE_MIN_LIFT          | 0.10    | candidate must beat popularity's NDCG@k by this share (>= -1;|
|                        |         | negative: may trail it by that much)                         |

An empty value counts as unset; a bad or out-of-range value raises ``SettingsError`` naming
the variable (``contracts.env``).

The defaults of EASE, the top-N SVD (PureSVD), iALS and the Mult-DAE's epochs and history
weighting are the values chosen on a validation split of MovieLens-100K (the training part's
latest 20% per user, never the test part): docs/MODELS.md. The neural defaults otherwise
follow Liang et al. (2018), Mult-DAE, with three changes measured on the simulator's worlds
(docs/BENCHMARKS.md): a narrower hidden layer (64, not 200: 200 overfits snapshots of a few
thousand users and costs 3x more at a million), smaller batches on small snapshots (see
NEURAL_BATCH; on MovieLens-100K auto is the validated 32), and the user cap, which bounds a
daily retrain at a million users: the item-side weights stop improving long before every
user has been seen, and the encoder embeds users it never trained on for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contracts import locations
from contracts.env import (
    FromEnv,
    SettingsError,
    choice,
    float_at_least,
    fraction,
    non_negative_float,
    non_negative_int,
    number,
    positive_float,
    positive_int,
    share,
    var,
)

__all__ = ["Settings", "SettingsError"]

value = choice("binary", "rating")  # training.weighting.VALUES
recency = choice("none", "rank", "relrank", "time")  # training.weighting.RECENCIES


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
    neural_value: str = var("NEURAL_VALUE", value, "binary")
    neural_recency: str = var("NEURAL_RECENCY", recency, "relrank")
    neural_recency_tau: float = var("NEURAL_RECENCY_TAU", positive_float, 0.2)
    neural_recency_floor: float = var("NEURAL_RECENCY_FLOOR", share, 0.0)
    ease_lambda: float = var("EASE_LAMBDA", positive_float, 841.0)
    ease_pop_exponent: float = var("EASE_POP_EXPONENT", number, 0.241)
    ease_rank: int = var("EASE_RANK", positive_int, 128)
    ease_value: str = var("EASE_VALUE", value, "rating")
    ease_recency: str = var("EASE_RECENCY", recency, "rank")
    ease_recency_tau: float = var("EASE_RECENCY_TAU", positive_float, 8.1)
    ease_recency_floor: float = var("EASE_RECENCY_FLOOR", share, 0.0207)
    puresvd_factors: int = var("PURESVD_FACTORS", positive_int, 33)
    puresvd_pop_norm: float = var("PURESVD_POP_NORM", number, 0.127)
    puresvd_value: str = var("PURESVD_VALUE", value, "rating")
    puresvd_recency: str = var("PURESVD_RECENCY", recency, "relrank")
    puresvd_recency_tau: float = var("PURESVD_RECENCY_TAU", positive_float, 0.169)
    puresvd_recency_floor: float = var("PURESVD_RECENCY_FLOOR", share, 0.0068)
    ials_factors: int = var("IALS_FACTORS", positive_int, 16)
    ials_regularization: float = var("IALS_REGULARIZATION", non_negative_float, 5.74)
    ials_alpha: float = var("IALS_ALPHA", non_negative_float, 5.01)
    ials_iterations: int = var("IALS_ITERATIONS", positive_int, 10)
    ials_value: str = var("IALS_VALUE", value, "binary")
    ials_recency: str = var("IALS_RECENCY", recency, "time")
    ials_recency_tau: float = var("IALS_RECENCY_TAU", positive_float, 0.00807)
    ials_recency_floor: float = var("IALS_RECENCY_FLOOR", share, 0.0189)
    # A file of ``python -m training.tune``: its models train with its chosen parameters.
    tuned_params: Path | None = var("TUNED_PARAMS", Path, None)
    eval_k: int = var("EVAL_K", positive_int, 20)
    eval_test_share: float = var("EVAL_TEST_SHARE", fraction, 0.2)
    eval_min_interactions: int = var("EVAL_MIN_INTERACTIONS", positive_int, 5)
    gate_tolerance: float = var("GATE_TOLERANCE", non_negative_float, 0.02)
    gate_min_lift: float = var("GATE_MIN_LIFT", float_at_least(-1.0), 0.10)
