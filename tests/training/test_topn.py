"""Top-k selection (``training.topn``) against a naive reference: ties, -0.0, inf and -inf,
seen items excluded, the grouped fast path on distinct scores, and NaN refused."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import sparse

from training.topn import exclude_seen, top_k

K = 20


@settings(max_examples=300, deadline=None)
@given(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        st.tuples(st.integers(1, 6), st.integers(1, 200)),
        # Few distinct values: ties are the hard case; -0.0 ties with 0.0, -inf is excluded.
        elements=st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.0, -3.0, np.inf, -np.inf]),
    ),
    st.integers(1, 25),
    st.integers(1, 8),
    st.randoms(use_true_random=False),
)
def test_top_k_matches_naive_reference(
    naive_top_k: Callable[[np.ndarray, set[int], int], list[int]],
    scores: np.ndarray,
    k: int,
    group: int,
    rnd,
) -> None:
    n_rows, n_items = scores.shape
    seen_sets = [{i for i in range(n_items) if rnd.random() < 0.3} for _ in range(n_rows)]
    seen = sparse.csr_matrix(
        [[1 if i in s else 0 for i in range(n_items)] for s in seen_sets], dtype=np.int8
    )
    work = scores.copy()
    exclude_seen(work, seen)
    got = top_k(work, k, group=group)
    for r in range(n_rows):
        expected = naive_top_k(scores[r], seen_sets[r], k)
        assert got[r].tolist() == expected + [-1] * (k - len(expected))


def test_top_k_fast_path_on_distinct_scores_matches_sorting() -> None:
    """Real-valued scores, the shape precompute sees: every row takes the grouped path."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(300, 2711)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    expected = np.lexsort((np.broadcast_to(np.arange(2711), scores.shape), -scores), axis=1)
    assert (top_k(scores, K) == expected[:, :K]).all()


def test_top_k_refuses_nan() -> None:
    scores = np.zeros((3, 500), dtype=np.float32)
    scores[1, 77] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        top_k(scores, K)
