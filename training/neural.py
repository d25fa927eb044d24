"""Mult-DAE (Liang et al., 2018, "Variational Autoencoders for Collaborative Filtering"):
a denoising autoencoder over each user's implicit history, trained in PyTorch.

Why this model: it learns from what users chose (every movie watched or rated counts, the
stars do not), which is what a top-N list must predict; its multinomial likelihood ranks the
whole catalogue per user, the way the lists are judged; and its decoder is one linear layer,
so a user's scores are ``tanh(encoder(history)) @ W + b``: the encoder output is the user's
factor vector, ``W`` the movies' factors, ``b`` their bias. That is exactly ``FactorModel``,
so precompute scores a block of users with one GEMM and never imports torch.

Training, per batch of users: L2-normalise each history, drop ``dropout`` of it (the noise
the autoencoder learns to undo), encode with an ``EmbeddingBag`` (a sparse-times-dense
product: no dense users x movies input is ever built), decode to logits over every movie
and minimise the negative multinomial log-likelihood of the full history. Adam, seeded; on
CPU two fits with the same seed and thread count give identical factors. A GPU is used when
torch sees one (NEURAL_DEVICE), where results agree to float tolerance.

Cost is dominated by the decoder: about 6 * users * movies * hidden flops per epoch. The
weights learn from at most ``max_train_users`` users (a seeded sample); every user is then
embedded by one encoder pass, which is cheap (nnz * hidden). See docs/BENCHMARKS.md.

That final pass (``training.foldin``, kind ``encoder``: numpy, so that a history the model
never saw is embedded by the very same function) may embed a weighted history (``value``,
``recency``, ``tau``, ``floor``: ``training.weighting``) instead of the plain one the weights
learnt from: each user's weights L2-normalised, the latest movies counting most. The encoder
is trained on the plain history and asked, at embedding time, about the recent one; on
MovieLens-100K that lifts NDCG@20 from 0.19 to 0.26 (docs/MODELS.md). The constructor's
defaults (plain) are the recipe of models registered before the weighting existed; the
settings' defaults are the validated values.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy import sparse

from ingest.progress import Progress
from training.factors import FactorModel
from training.foldin import FoldIn, fitted
from training.interactions import Interactions
from training.settings import Settings
from training.weighting import HistoryModel, rating_top

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# batch_size 0 ("auto"): Liang et al.'s 500 users per step on large data, smaller batches on
# small snapshots so that every epoch still takes this many gradient steps.
AUTO_MAX_BATCH, AUTO_MIN_BATCH, AUTO_STEPS_PER_EPOCH = 500, 32, 50


# Below this many multiply-adds per decoder step (batch x movies x hidden) the CPU trains on
# one thread: small steps are all synchronisation, and on a busy machine two threads spinning
# on each other made a small snapshot's fit 10x slower than one thread.
SINGLE_THREAD_BELOW = 50_000_000


def auto_batch(learners: int) -> int:
    return int(min(AUTO_MAX_BATCH, max(AUTO_MIN_BATCH, -(-learners // AUTO_STEPS_PER_EPOCH))))


def resolve_device(name: str) -> str:
    """'auto' is the first GPU when torch sees one, else the CPU; anything else as given."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class MultDAE(HistoryModel):
    name = "multdae"
    settings_prefix = "neural"
    knobs: ClassVar[dict[str, str]] = {
        "hidden": "neural_hidden",
        "epochs": "neural_epochs",
        "batch_size": "neural_batch",
        "lr": "neural_lr",
        "dropout": "neural_dropout",
        "weight_decay": "neural_weight_decay",
        "max_train_users": "neural_train_users",
    }

    def __init__(
        self,
        *,
        hidden: int = 64,
        epochs: int = 40,
        batch_size: int = 0,
        lr: float = 1e-3,
        dropout: float = 0.5,
        weight_decay: float = 0.0,
        max_train_users: int = 200_000,
        device: str = "auto",
        **history: Any,
    ) -> None:
        """``history``: the input weighting's ``value``, ``recency``, ``tau``, ``floor`` and
        the ``seed`` (``training.weighting.HistoryModel``)."""
        super().__init__(**history)
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.max_train_users = max_train_users
        self.device = device
        self.epoch_seconds: list[float] = []  # filled by fit(), for benchmarks and logs
        self.embed_seconds = 0.0  # the final encoder pass over every user
        self.batch_used = 0
        self.threads_used = 0

    @classmethod
    def own_settings(cls, settings: Settings) -> dict[str, Any]:
        """The knobs, and where to train: the device is the settings' call, not a
        hyper-parameter (``params`` leaves it out)."""
        return {**super().own_settings(settings), "device": settings.neural_device}

    @classmethod
    def from_params(cls, params: dict[str, Any], settings: Settings) -> MultDAE:
        return cls(**params, device=settings.neural_device)

    def fit(self, data: Interactions) -> FactorModel:
        import torch

        threads = torch.get_num_threads()
        try:
            return self._fit(data)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, data: Interactions) -> FactorModel:
        import torch

        device = torch.device(resolve_device(self.device))
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        noise = torch.Generator(device=device).manual_seed(self.seed)
        history = _History.of(data.seen, device)
        net = _Net(data.n_items, self.hidden).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)

        learners = np.flatnonzero(history.lengths > 0)
        if 0 < self.max_train_users < len(learners):
            learners = np.sort(rng.choice(learners, self.max_train_users, replace=False))
        batch_size = self.batch_size or auto_batch(len(learners))
        self.batch_used = batch_size
        if device.type == "cpu" and batch_size * data.n_items * self.hidden < SINGLE_THREAD_BELOW:
            torch.set_num_threads(1)
        self.threads_used = torch.get_num_threads()
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        self.epoch_seconds = []
        net.train()
        with Progress(self.name, total=self.epochs, unit="epochs", log=log) as progress:
            for epoch in range(self.epochs):
                started = time.perf_counter()
                order = rng.permutation(learners)
                total = 0.0
                for lo in range(0, len(order), batch_size):
                    users = order[lo : lo + batch_size]
                    items, offsets, weights, owner = history.batch(users)
                    keep = torch.rand(len(items), generator=noise, device=device) >= self.dropout
                    logits = net(items, offsets, weights * keep / (1.0 - self.dropout))
                    log_probs = torch.log_softmax(logits, dim=1)
                    loss = -log_probs[owner, items].sum() / len(users)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * len(users)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                self.epoch_seconds.append(time.perf_counter() - started)
                log.debug(
                    "multdae epoch %d: loss %.3f, %.1fs",
                    epoch + 1,
                    total / max(len(learners), 1),
                    self.epoch_seconds[-1],
                )
                progress.advance(note=f"loss {total / max(len(learners), 1):.3f}")

        net.eval()
        started = time.perf_counter()
        fold = FoldIn(
            "encoder",
            self.weighting,
            rating_top(data),
            {
                "encoder": net.encoder.weight.detach().cpu().numpy().astype(np.float32),
                "encoder_bias": net.encoder_bias.detach().cpu().numpy().astype(np.float32),
            },
        )
        # Every user is embedded by the encoder, folded in from their weighted history: the
        # same function (numpy, on the CPU) a history the model never saw goes through.
        model = fitted(
            fold,
            algorithm=self.name,
            data=data,
            item_factors=net.decoder.weight.detach().cpu().numpy().astype(np.float32),
            item_bias=net.decoder.bias.detach().cpu().numpy().astype(np.float32),
        )
        self.embed_seconds = time.perf_counter() - started
        return model


class _History:
    """Every user's movies as flat index arrays (the CSR's own), on the training device, so
    a batch is a few slices and gathers rather than a dense users x movies matrix."""

    def __init__(
        self,
        indptr: np.ndarray,
        indices: torch.Tensor,
        device: torch.device,
        values: np.ndarray | None = None,
    ):
        import torch

        self.indptr = indptr
        self.lengths = np.diff(indptr)
        self.indices = indices
        self.device = device
        self.values = values  # per entry, else 1 for every movie
        self.norms = None
        if values is not None:
            owner = np.repeat(np.arange(len(self.lengths)), self.lengths)
            squares = np.bincount(owner, values.astype(np.float64) ** 2, len(self.lengths))
            self.norms = np.maximum(np.sqrt(squares), 1e-12)
        self._torch = torch

    @classmethod
    def of(
        cls, seen: sparse.csr_matrix, device: torch.device, *, weighted: bool = False
    ) -> _History:
        """``seen``'s movies; with ``weighted``, its values weigh them (L2-normalised)."""
        import torch

        seen = seen.tocsr()
        seen.sort_indices()
        indices = torch.from_numpy(seen.indices.astype(np.int64)).to(device)
        values = seen.data.astype(np.float32) if weighted else None
        return cls(seen.indptr.astype(np.int64), indices, device, values)

    def batch(
        self, users: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(items, offsets, L2-normalised weights, row of each item in the batch)."""
        torch = self._torch
        starts, lengths = self.indptr[users], self.lengths[users]
        positions = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(
            lengths.sum()
        )
        owner = np.repeat(np.arange(len(users)), lengths)
        if self.values is None or self.norms is None:
            weights = np.repeat(1.0 / np.sqrt(np.maximum(lengths, 1)), lengths).astype(np.float32)
        else:
            norms = np.repeat(self.norms[users], lengths)
            weights = (self.values[positions] / norms).astype(np.float32)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        to = self.device
        return (
            self.indices[torch.from_numpy(positions).to(to)],
            torch.from_numpy(offsets).to(to),
            torch.from_numpy(weights).to(to),
            torch.from_numpy(owner).to(to),
        )


def _net_class():
    import torch
    from torch import nn

    class Net(nn.Module):
        """[movies -> hidden (tanh) -> movies]; the encoder's input layer is an EmbeddingBag."""

        def __init__(self, n_items: int, hidden: int):
            super().__init__()
            self.encoder = nn.EmbeddingBag(n_items, hidden, mode="sum")
            self.encoder_bias = nn.Parameter(torch.zeros(hidden))
            self.decoder = nn.Linear(hidden, n_items)
            # Xavier, as the paper's code: the bag's default N(0, 1) saturates the tanh.
            nn.init.xavier_uniform_(self.encoder.weight)
            nn.init.xavier_uniform_(self.decoder.weight)
            nn.init.zeros_(self.decoder.bias)

        def embed(self, items, offsets, weights):
            bag = self.encoder(items, offsets, per_sample_weights=weights)
            return torch.tanh(bag + self.encoder_bias)

        def forward(self, items, offsets, weights):
            return self.decoder(self.embed(items, offsets, weights))

    return Net


def _Net(n_items: int, hidden: int):  # noqa: N802 - reads as the class it builds
    """The network, built on first use so that importing this module never imports torch."""
    return _net_class()(n_items, hidden)
