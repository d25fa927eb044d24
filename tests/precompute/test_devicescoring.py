"""The torch scoring pass against the numpy path it stands in for on a GPU (run here on torch's
CPU device): same selection order, same exclusion, same refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import sparse

from precompute import devicescoring
from precompute.scoring import Ranker
from training.factors import FactorModel
from training.interactions import Interactions
from training.topn import exclude_seen, top_k

# Few distinct values, both zeros and both infinities: ties and -inf everywhere.
SCORES = st.sampled_from([-np.inf, -1.5, -0.0, 0.0, 0.25, 1.0, 3.0, np.inf]) | st.floats(
    -4, 4, width=32
)


@settings(max_examples=200, deadline=None)
@given(
    scores=st.integers(1, 6).flatmap(
        lambda rows: st.integers(1, 90).flatmap(
            lambda items: arrays(np.float32, (rows, items), elements=SCORES)
        )
    ),
    k=st.integers(1, 25),
)
def test_top_k_is_numpys_order_ties_and_infinities_included(scores: np.ndarray, k: int) -> None:
    expected = top_k(scores, k)
    got = devicescoring.top_k(torch.from_numpy(scores.copy()), k).numpy()
    np.testing.assert_array_equal(got, expected)


def test_top_k_refuses_nan() -> None:
    scores = torch.zeros((2, 40))
    scores[1, 7] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        devicescoring.top_k(scores, 5)


def test_exclude_sets_exactly_the_seen_pairs() -> None:
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((30, 200)).astype(np.float32)
    seen = sparse.random(30, 200, density=0.1, random_state=4, format="csr", dtype=np.float32)
    on_device = torch.from_numpy(scores.copy())
    devicescoring.exclude(on_device, seen)
    exclude_seen(scores, seen)
    np.testing.assert_array_equal(on_device.numpy(), scores)


def test_ranker_lists_are_identical_on_both_paths_for_real_valued_factors() -> None:
    """A trained-looking model (float factors, a bias), users the model never saw, heavy
    histories: the device pass gives the numpy path's lists, every user, block by block."""
    rng = np.random.default_rng(11)
    n_users, n_items, d = 400, 3000, 16
    user_ids = np.arange(1, n_users + 1, dtype=np.int64)
    item_ids = np.array(sorted(f"m{i:05d}" for i in range(n_items)), dtype=object)
    seen = sparse.random(n_users, n_items, density=0.03, random_state=5, format="csr")
    seen = sparse.csr_matrix((np.ones(seen.nnz, np.int8), seen.indices, seen.indptr), seen.shape)
    model = FactorModel(
        "test",
        user_ids[: n_users - 25],  # 25 users only the snapshot knows: popularity
        item_ids,
        rng.standard_normal((n_users - 25, d)).astype(np.float32),
        rng.standard_normal((n_items, d)).astype(np.float32),
        rng.standard_normal(n_items).astype(np.float32),
    )
    data = Interactions(user_ids, item_ids, None, seen)
    lists = {}
    for device in ("numpy", "cpu"):
        ranker = Ranker(model, data, block_size=64, threads=2, device=device)
        lists[device] = np.concatenate([ranked for _, ranked in ranker.blocks()])
    assert lists["numpy"].shape == (n_users, 20)
    np.testing.assert_array_equal(lists["cpu"], lists["numpy"])


def test_auto_is_numpy_without_a_gpu_and_names_are_checked() -> None:
    assert devicescoring.resolve("auto") == ("cuda" if torch.cuda.is_available() else "numpy")
    assert devicescoring.resolve("cpu") == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        devicescoring.resolve("tpu")
