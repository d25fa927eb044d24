"""The one interface every algorithm implements (in the spirit of surprise's AlgoBase).

An algorithm turns ``Interactions`` into a ``FactorModel``; adding a model is adding one
subclass and one line in ``training.train.ALGORITHMS``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Self

from training.factors import FactorModel
from training.interactions import Interactions
from training.settings import Settings


class Algorithm(ABC):
    name: ClassVar[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The algorithm configured from the environment; override when it has parameters."""
        return cls()

    @abstractmethod
    def params(self) -> dict:
        """Hyper-parameters, recorded with the trained model."""

    @abstractmethod
    def fit(self, data: Interactions) -> FactorModel:
        """Train on a snapshot's interactions."""
