"""Folding in: a user's factors from a history the model has not seen, with no refit.

Every model's artifact (``FactorModel``) scores users from their factors; ``FoldIn``, saved in
the same ``model.npz``, says how a history becomes those factors. ``fit`` computes every
training user's factors through it (``FoldIn.factors``), so the factors precompute scores at
02:00 are by construction what folding the same history in gives at 10:00: the refresher
(``refresher/``) and precompute run one function, and ``tests/training/test_foldin.py``
checks the equality for each model. What each kind keeps:

| kind         | models         | a history x_u (``training.weighting``) becomes            |
|--------------|----------------|-----------------------------------------------------------|
| ``projection`` | ease, puresvd | ``(x_u * column_scale) @ projection``: EASE's U S (or the |
|              |                | identity when exact), PureSVD's D and V                   |
| ``ials``     | ials           | the confidence-weighted least-squares solve against the   |
|              |                | movie factors (``training.ials.fold_in``)                 |
| ``encoder``  | multdae        | ``tanh(normalise(x_u) @ encoder + encoder_bias)``          |
| ``ridge``    | svd (surprise) | a ridge solve of the user's stars minus ``mu + b_i``      |
|              |                | against the movie factors: ``[b_u, p_u]``                 |
| ``constant`` | popularity     | nothing: zero-width factors, the bias ranks               |

A model with no ``FoldIn`` (random scores; artifacts saved before folding in existed) keeps
the factors it was fit with: a refresher gives its known users those and anyone else the
popularity order, as precompute does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from training.interactions import Interactions
from training.weighting import Weighting, history_matrix

if TYPE_CHECKING:
    from training.factors import FactorModel

KINDS = ("projection", "ials", "encoder", "ridge", "constant")
PREFIX = "foldin_"  # of the arrays in model.npz; the spec is PREFIX + "spec"


@dataclass(frozen=True)
class FoldIn:
    kind: str
    weighting: Weighting = field(default_factory=Weighting)
    rating_top: float = 0.0  # stars are divided by this (weighting value "rating")
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    numbers: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fold-in kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    def history(self, data: Interactions) -> sparse.csr_matrix:
        """The weighted history x (users x movies) this model folds users in from."""
        return history_matrix(data, self.weighting, rating_top=self.rating_top or None)

    def factors(
        self, model: FactorModel, data: Interactions
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(which of ``data``'s users get factors, their factors float32 [n, d], their
        rating bias or None). ``data`` must be indexed on the model's catalogue. Users left
        out are those the model cannot say anything about (no movie; for the ridge, no
        rating): precompute and the refresher rank them by popularity."""
        if not np.array_equal(model.item_ids, data.item_ids):
            raise ValueError("fold in needs the histories indexed on the model's catalogue")
        if self.kind == "constant":
            users = np.ones(data.n_users, dtype=bool)
            return users, np.zeros((data.n_users, model.item_factors.shape[1]), np.float32), None
        if self.kind == "ridge":
            return self._ridge(model, data)
        history = self.history(data)
        if self.kind == "encoder":
            return np.ones(data.n_users, dtype=bool), self._encode(history), None
        users = np.diff(history.indptr) > 0
        history = history[users]
        if self.kind == "projection":
            return users, self._project(history), None
        from training.ials import fold_in

        return users, fold_in(model.item_factors, history, *self._ials_numbers()), None

    def _ials_numbers(self) -> tuple[float, float]:
        return float(self.numbers["regularization"]), float(self.numbers["alpha"])

    def _project(self, history: sparse.csr_matrix) -> np.ndarray:
        projection = self.arrays.get("projection")
        scale = self.arrays.get("column_scale")
        dtype = np.float32 if projection is None else projection.dtype
        x = history.astype(dtype)
        if scale is not None:
            x = x @ sparse.diags(scale.astype(dtype))
        if projection is None:  # the identity: the history is the factors
            return np.ascontiguousarray(x.toarray(), dtype=np.float32)
        return np.ascontiguousarray(np.asarray(x @ projection), dtype=np.float32)

    def _encode(self, history: sparse.csr_matrix) -> np.ndarray:
        """The Mult-DAE's encoder: L2-normalised history, sum of movie embeddings, tanh."""
        history = history.tocsr()
        squares = np.asarray(history.multiply(history).sum(axis=1), dtype=np.float64).ravel()
        norms = np.maximum(np.sqrt(squares), 1e-12)
        lengths = np.diff(history.indptr)
        weights = (history.data.astype(np.float32) / np.repeat(norms, lengths)).astype(np.float32)
        normalised = sparse.csr_matrix((weights, history.indices, history.indptr), history.shape)
        bag = np.asarray(normalised @ self.arrays["encoder"], dtype=np.float32)
        return np.tanh(bag + self.arrays["encoder_bias"][None, :]).astype(np.float32)

    def _ridge(
        self, model: FactorModel, data: Interactions
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per rated user, ``[b_u, p_u] = (A^T A + reg I)^-1 A^T t`` with rows ``A = [1, q_i]``
        and ``t = r_ui - mu - b_i`` over the movies they rated (the latest rating each)."""
        ratings = data.ratings
        d = model.item_factors.shape[1]
        users = np.zeros(data.n_users, dtype=bool)
        factors = np.zeros((data.n_users, d), dtype=np.float32)
        bias = np.zeros(data.n_users, dtype=np.float32)
        if ratings is None or ratings.empty:
            return users, factors[users], bias[users]
        owner = ratings["user_idx"].to_numpy(dtype=np.int64)
        items = ratings["item_idx"].to_numpy(dtype=np.int64)
        order = np.lexsort((items, owner))
        owner, items = owner[order], items[order]
        stars = ratings["rating"].to_numpy(dtype=np.float64)[order]
        mean = float(model.global_mean or 0.0)
        design = np.hstack([np.ones((len(items), 1)), model.item_factors[items].astype(np.float64)])
        target = stars - mean - model.item_bias[items].astype(np.float64)
        rated, starts = np.unique(owner, return_index=True)
        systems = np.add.reduceat(design[:, :, None] * design[:, None, :], starts)
        systems += self.numbers["reg"] * np.eye(d + 1)
        rhs = np.add.reduceat(design * target[:, None], starts)
        solved = np.linalg.solve(systems, rhs[:, :, None])[:, :, 0]
        users[rated] = True
        bias[rated] = solved[:, 0]
        factors[rated] = solved[:, 1:]
        return users, factors[users], bias[users]

    # --- in model.npz ---------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        spec = {
            "kind": self.kind,
            "weighting": self.weighting.params(),
            "rating_top": self.rating_top,
            "numbers": dict(self.numbers),
        }
        arrays = {PREFIX + name: value for name, value in self.arrays.items()}
        return {PREFIX + "spec": np.array(json.dumps(spec)), **arrays}

    @classmethod
    def from_arrays(cls, saved: Mapping[str, np.ndarray]) -> FoldIn | None:
        """The fold-in saved among ``saved`` (a loaded npz), None if it holds none."""
        if PREFIX + "spec" not in saved:
            return None
        spec = json.loads(str(saved[PREFIX + "spec"]))
        arrays = {
            name.removeprefix(PREFIX): np.asarray(saved[name])
            for name in saved
            if name.startswith(PREFIX) and name != PREFIX + "spec"
        }
        return cls(
            kind=spec["kind"],
            weighting=Weighting(**spec["weighting"]),
            rating_top=float(spec["rating_top"]),
            arrays=arrays,
            numbers=spec["numbers"],
        )


def fitted(
    fold: FoldIn,
    *,
    algorithm: str,
    data: Interactions,
    item_factors: np.ndarray,
    item_bias: np.ndarray | None = None,
    global_mean: float | None = None,
    rating_range: tuple[float, float] | None = None,
) -> FactorModel:
    """The artifact of a fit: the learnt movie side, and every training user's factors
    folded in from their training history through ``fold`` (what ``fold_in_users`` gives
    any history later)."""
    from training.factors import FactorModel

    bias = np.zeros(data.n_items, np.float32) if item_bias is None else item_bias
    empty = FactorModel(
        algorithm=algorithm,
        user_ids=data.user_ids[:0],
        item_ids=data.item_ids,
        user_factors=np.zeros((0, item_factors.shape[1]), np.float32),
        item_factors=np.ascontiguousarray(item_factors, dtype=np.float32),
        item_bias=np.ascontiguousarray(bias, dtype=np.float32),
        global_mean=global_mean,
        rating_range=rating_range,
        fold_in=fold,
    )
    return fold_in_users(empty, data)


def fold_in_users(model: FactorModel, data: Interactions) -> FactorModel:
    """``model`` with ``data``'s users instead of its own, their factors folded in from their
    histories in ``data`` (indexed on the model's catalogue, ``on_catalogue``). A model with
    no fold-in keeps the factors it has for users it knows; the rest are left out (ranked
    by popularity)."""
    if model.fold_in is None:
        rows = model.user_rows(data.user_ids)
        known = rows >= 0
        bias = None if model.user_bias is None else model.user_bias[rows[known]]
        return replace(
            model,
            user_ids=data.user_ids[known],
            user_factors=model.user_factors[rows[known]],
            user_bias=bias,
        )
    users, factors, bias = model.fold_in.factors(model, data)
    return replace(
        model,
        user_ids=data.user_ids[users],
        user_factors=np.ascontiguousarray(factors, dtype=np.float32),
        user_bias=None if bias is None else bias.astype(np.float32),
    )


def on_catalogue(
    ratings: pd.DataFrame,
    watches: pd.DataFrame,
    item_ids: np.ndarray,
    user_ids: np.ndarray | None = None,
) -> Interactions:
    """Histories (a snapshot's two tables, or the same shape) indexed on a model's
    catalogue ``item_ids``: rows of movies the model does not know are dropped (it cannot
    score them, nor would it ever recommend them)."""
    # A hash index, not ``Series.isin(set)``: on arrow strings that walks the set in Python
    # (0.28 s for 27k movies, per call; this is 0.01 s).
    catalogue = pd.Index(item_ids)
    ratings = ratings[catalogue.get_indexer(ratings["movie_id"]) >= 0]
    watches = watches[catalogue.get_indexer(watches["movie_id"]) >= 0]
    if user_ids is None:
        user_ids = np.union1d(ratings["user_id"].to_numpy(), watches["user_id"].to_numpy())
    if ratings.empty and watches.empty:  # nothing the model knows: empty histories
        shape = (len(user_ids), len(item_ids))
        nothing = pd.DataFrame({"user_idx": [], "item_idx": [], "rating": []})
        return Interactions(
            np.asarray(user_ids),
            item_ids,
            nothing.astype({"user_idx": np.int64, "item_idx": np.int64, "rating": np.float32}),
            sparse.csr_matrix(shape, dtype=np.int8),
            sparse.csr_matrix(shape, dtype=np.uint32),
        )
    return Interactions.from_frames(ratings, watches, user_ids=user_ids, item_ids=item_ids)
