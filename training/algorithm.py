"""The one interface every model implements (in the spirit of surprise's AlgoBase).

An algorithm fits on ``Interactions`` (a snapshot, or the training part of an evaluation
split) and returns a ``FactorModel``: the artifact that scores a block of users against every
movie with one matrix product and saves/loads itself. Adding a model is adding one subclass
and one line in ``training.train.ALGORITHMS``; evaluation, the gate and precompute then
treat it like every other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

from training.factors import FactorModel
from training.interactions import Interactions
from training.settings import Settings


class Algorithm(ABC):
    name: ClassVar[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The algorithm configured from the environment; override when it has parameters."""
        return cls()

    @classmethod
    def from_params(cls, params: dict[str, Any], settings: Settings) -> Self:
        """The algorithm a registered model was trained with: ``params()`` are its
        constructor's keyword arguments. ``settings`` supplies what is not a
        hyper-parameter (such as the device), so the gate can refit production's recipe."""
        return cls(**params)

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Hyper-parameters, recorded with the trained model; ``cls(**params())`` rebuilds it."""

    @abstractmethod
    def fit(self, data: Interactions) -> FactorModel:
        """Train on a snapshot's interactions."""
