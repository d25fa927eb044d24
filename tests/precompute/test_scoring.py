"""Scoring, rules and sharding against naive per-user references (no Redis here; publishing
is in test_publish.py, top-k selection in tests/training/test_topn.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import sparse

from contracts.response import parse_body
from precompute.bodies import Catalogue, cold_start_body, user_bodies
from precompute.rules import LabelCap, apply_rules, prefix_labels, year_labels
from precompute.shard import Shard, rows_of, shard_of
from training.factors import FactorModel
from training.interactions import Interactions

K = 20


# --- scoring: whole bodies against a per-user reference ------------------------------------


WORDS = ("alien", "heat", "star", "up")  # title prefixes, for the franchise rule


def small_case(kind: str, n_users: int = 150, n_items: int = 1500, seed: int = 0):
    """A model whose float32 scores are exact whatever the BLAS path (dyadic factors with few
    bits), so a per-user reference can demand identical lists. ``ints`` makes ties common."""
    rng = np.random.default_rng(seed)
    user_ids = np.arange(1, n_users + 1, dtype=np.int64) * 7
    names = [f"{WORDS[i % 4]}+{i}+{1990 + i % 30}" for i in range(n_items)]
    item_ids = np.array(sorted(names), dtype=object)
    seen = sparse.random(n_users, n_items, density=0.05, random_state=seed, format="lil")
    seen[0, :] = 1  # the first user has seen everything
    seen[1, 5:] = 1  # the second all but five
    seen = sparse.csr_matrix(seen, dtype=np.int8)
    seen.data[:] = 1
    data = Interactions(user_ids, item_ids, None, seen)
    known = n_users - 6  # the last six users are unknown to the model

    def factors(*shape: int) -> np.ndarray:
        if kind == "ints":
            return rng.integers(-2, 3, size=shape).astype(np.float32)
        return (rng.integers(-512, 512, size=shape) / 1024).astype(np.float32)

    model = FactorModel(
        "test", user_ids[:known], item_ids, factors(known, 8), factors(n_items, 8), factors(n_items)
    )
    return model, data


@pytest.fixture(scope="session")
def reference_lists(
    naive_top_k: Callable[[np.ndarray, set[int], int], list[int]],
) -> Callable[..., dict]:
    """``reference_lists(model, data, rules=(), pool=60)``: the lists by user ID, per user in
    float64: unseen movies by (-score, index) (``naive_top_k``); unknown users by popularity;
    the rules applied greedily to the first ``pool``; short lists topped up by popularity."""

    def reference_lists(model: FactorModel, data: Interactions, rules=(), pool: int = 60):
        popularity = data.popularity().astype(np.float64)
        by_popularity = sorted(range(data.n_items), key=lambda i: (-popularity[i], i))
        lists = {}
        for u, user_id in enumerate(data.user_ids.tolist()):
            row = model.user_rows(np.array([user_id]))[0]
            if row >= 0:
                p = model.user_factors[row].astype(np.float64)
                scores = model.item_factors.astype(np.float64) @ p + model.item_bias
            else:
                scores = popularity
            ranked = naive_top_k(scores, set(data.seen[u].indices.tolist()), pool if rules else K)
            chosen: list[int] = []
            for item in ranked:
                if len(chosen) < K and all(
                    sum(r.labels[c] == r.labels[item] for c in chosen) < r.limit for r in rules
                ):
                    chosen.append(item)
            chosen += [i for i in by_popularity if i not in chosen][: K - len(chosen)]
            lists[user_id] = [data.item_ids[i] for i in chosen]
        return lists

    return reference_lists


@pytest.mark.parametrize("device", ["numpy", "cpu"])
@pytest.mark.parametrize(
    ("kind", "block_size", "threads"), [("dyadic", 1000, 1), ("dyadic", 7, 2), ("ints", 16, 2)]
)
def test_user_bodies_match_per_user_reference(
    kind: str, block_size: int, threads: int, device: str, reference_lists: Callable[..., dict]
) -> None:
    """The numpy path and the torch pass (here on the CPU, as it runs on a GPU) both give the
    reference's lists, ties included (``ints``: many), unknown and saturated users included."""
    model, data = small_case(kind)
    bodies = dict(user_bodies(model, data, block_size=block_size, threads=threads, device=device))
    assert sorted(bodies) == data.user_ids.tolist()
    expected = reference_lists(model, data)
    for user_id, body in bodies.items():
        assert parse_body(body.decode()) == expected[user_id], user_id


def test_every_list_has_twenty_unique_unseen_movies_when_there_are_enough() -> None:
    model, data = small_case("ints")
    bodies = dict(user_bodies(model, data))
    for u, user_id in enumerate(data.user_ids.tolist()):
        movies = parse_body(bodies[user_id].decode())
        assert len(movies) == K
        assert len(set(movies)) == K
        unseen = set(data.item_ids[np.setdiff1d(np.arange(data.n_items), data.seen[u].indices)])
        assert set(movies) <= unseen or len(unseen) < K  # users 0 and 1 saw nearly everything
    assert set(data.item_ids[:5]) <= set(parse_body(bodies[int(data.user_ids[1])].decode()))


def test_shards_partition_the_users_and_give_the_same_bodies() -> None:
    model, data = small_case("dyadic")
    whole = dict(user_bodies(model, data))
    parts: dict[int, bytes] = {}
    for shard in Shard.all(3):
        part = dict(user_bodies(model, data, users=rows_of(data.user_ids, shard), block_size=5))
        assert not set(part) & set(parts)
        parts.update(part)
    assert parts == whole


@pytest.mark.parametrize("device", ["numpy", "cpu"])
def test_rules_cap_labels_greedily_like_the_reference(
    device: str, reference_lists: Callable[..., dict]
) -> None:
    model, data = small_case("dyadic", n_items=600)
    rules = [
        LabelCap("year", year_labels(data.item_ids), 2),
        LabelCap("prefix", prefix_labels(data.item_ids, 1), 6),
    ]
    bodies = dict(user_bodies(model, data, rules=rules, pool=60, threads=2, device=device))
    expected = reference_lists(model, data, rules, pool=60)
    for user_id, body in bodies.items():
        movies = parse_body(body.decode())
        assert movies == expected[user_id]
        if user_id > 14:  # users 0 and 1 (ids 7, 14) are topped up past the rules
            years = [m.rsplit("+", 1)[1] for m in movies]
            assert max(years.count(y) for y in years) <= 2
            words = [m.split("+", 1)[0] for m in movies]
            assert max(words.count(w) for w in WORDS) <= 6
    cold = parse_body(cold_start_body(data, rules).decode())
    assert len(cold) == K
    years = [m.rsplit("+", 1)[1] for m in cold]
    assert max(years.count(y) for y in years) <= 2


def test_apply_rules_pads_when_candidates_run_out() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    ranked = np.array([[0, 1, 2, 3, 4, -1], [4, 3, -1, -1, -1, -1]])
    got = apply_rules(ranked, [LabelCap("x", labels, 1)], 3)
    assert got.tolist() == [[0, 3, -1], [4, -1, -1]]


def test_catalogue_refuses_ids_that_would_break_the_body() -> None:
    with pytest.raises(ValueError, match="bad movie ID"):
        Catalogue(np.array(["ok+2000", "comma,inside+2000"], dtype=object))
    catalogue = Catalogue(np.array(["a+2000", "b+2001", "c+2002"], dtype=object))
    assert catalogue.bodies(np.array([[2, 0, 1], [1, -1, 0]])) == [
        b"c+2002,a+2000,b+2001",
        b"b+2001,a+2000",
    ]
    with pytest.raises(ValueError, match="duplicate"):
        catalogue.bodies(np.array([[1, 1, 0]]))


def test_shard_assignment_is_a_stable_crc32_of_the_decimal_id() -> None:
    users = np.array([1, 2, 3, 42, 12345, 999999999])
    # Pinned: workers on other machines (or in other languages) must agree forever.
    assert shard_of(users, 4).tolist() == [3, 1, 3, 0, 0, 0]
    assert shard_of(users, 7).tolist() == [2, 0, 6, 3, 1, 4]
    many = np.arange(1, 5000) * 13
    rows = [rows_of(many, s) for s in Shard.all(4)]
    assert sorted(np.concatenate(rows).tolist()) == list(range(len(many)))
    assert min(map(len, rows)) > 1000  # and roughly even
    assert Shard.parse(" 2/5 ") == Shard(2, 5)
    for bad in ("5/5", "-1/3", "1-3", "1/0"):
        with pytest.raises(ValueError):
            Shard.parse(bad)
