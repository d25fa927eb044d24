"""Experiments: the statistics on planted data (a real effect is found, no effect is found
about alpha of the time, the sample size formula delivers its power), the verdict rule, the
definition parser, the Redis store as the service reads it, the bandit, the report and the
CLI, all against a real Redis."""

from __future__ import annotations

import fnmatch
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from contracts import ab, rediskeys
from experiments import analysis, bandit, experiment_report, review, stats, store
from experiments.__main__ import main
from experiments.definition import DefinitionError, Experiment
from experiments.settings import Settings
from precompute import versions

T0 = datetime(2025, 3, 1, tzinfo=UTC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def outcomes_frame(
    rates: dict[str, float], users: int, *, seed: int = 0, days: int = 7, start: datetime = T0
) -> pd.DataFrame:
    """``users`` per variant, each converting with the variant's rate, first exposed at a
    random time over ``days``: the shape ``online.conversion`` produces."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, (variant, rate) in enumerate(sorted(rates.items())):
        converted = rng.random(users) < rate
        seconds = rng.integers(0, days * 86_400, users)
        frames.append(
            pd.DataFrame(
                {
                    "user": np.arange(users, dtype=np.int64) + i * users + 1,
                    "variant": variant,
                    "version": f"v-{variant}",
                    "first_exposure": pd.Timestamp(start).tz_localize(None)
                    + pd.to_timedelta(seconds, unit="s"),
                    "exposures": rng.integers(1, 20, users),
                    "conversions": converted.astype(np.int64),
                    "converted": converted,
                    "minutes": np.where(converted, 90.0, 0.0),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def counts_frame(counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Exactly ``converted`` of ``users`` per variant, all exposed at T0."""
    rows, first = [], 1
    for variant, (users, converted) in counts.items():
        rows.append(
            pd.DataFrame(
                {
                    "user": np.arange(first, first + users),
                    "variant": variant,
                    "first_exposure": pd.Timestamp(T0).tz_localize(None),
                    "converted": np.arange(users) < converted,
                }
            )
        )
        first += users
    return pd.concat(rows, ignore_index=True)


def keyspace(url: str) -> dict[bytes, bytes]:
    """Every key with its serialized value: equal before and after means nothing written."""
    raw = redis.Redis.from_url(url)
    try:
        return {key: raw.dump(key) for key in raw.keys("*")}
    finally:
        raw.close()


def draft(**changes) -> Experiment:
    fields = {
        "name": "exp1",
        "variants": {"control": "v1", "treatment": "v2"},
        "weights": {"control": 90, "treatment": 10},
    }
    return Experiment(**{**fields, **changes})


@pytest.fixture
def published(redis_client: redis.Redis) -> redis.Redis:
    """Versions v1..v3 listed as published (the store checks rec:versions only)."""
    redis_client.zadd(rediskeys.VERSIONS, {"v1": 1.0, "v2": 2.0, "v3": 3.0})
    redis_client.set(rediskeys.ACTIVE, "v1")
    return redis_client


@pytest.fixture
def cli_redis(published: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI pointed at the test's Redis, with the versions of ``published``."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    return redis_url


BOTH = ["--variant", "control=v1", "--variant", "treatment=v2"]


# --- statistics on planted data -------------------------------------------------------------


def test_a_planted_effect_is_detected_and_a_planted_harm_stops() -> None:
    better = analysis.analyze(outcomes_frame({"control": 0.10, "treatment": 0.14}, 5000))
    (comparison,) = better.comparisons
    assert better.verdict.label == "winner: treatment"
    assert comparison.outcome == "better"
    assert comparison.z_low < 0.04 < comparison.z_high
    assert comparison.p_value < 1e-4
    assert [v.users for v in better.variants] == [5000, 5000]
    worse = analysis.analyze(outcomes_frame({"control": 0.14, "treatment": 0.10}, 5000))
    assert worse.verdict.label == "stop: treatment is worse"
    assert worse.comparisons[0].z_high < 0


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_with_no_effect_the_false_positive_rate_stays_near_alpha(alpha: float) -> None:
    """1,000 seeded A/A experiments of 2,000 users per arm, every user drawn: the share
    called significant, by the z-test and by the bootstrap interval, is within the 99.9 %
    binomial range around alpha."""
    runs, users, rate = 1000, 2000, 0.1
    rng = np.random.default_rng(7)
    treated = (rng.random((runs, users)) < rate).sum(axis=1)
    control = (rng.random((runs, users)) < rate).sum(axis=1)
    low, high = binom.interval(0.999, runs, alpha)
    test = stats.two_proportion_ztest(treated, users, control, users, alpha=alpha)
    assert low <= int((test.p_value < alpha).sum()) <= high
    assert low <= int(((test.low > 0) | (test.high < 0)).sum()) <= high
    boot_low, boot_high = stats.bootstrap_diff_ci(
        treated, users, control, users, alpha=alpha, resamples=2000, seed=1
    )
    assert low <= int(((boot_low > 0) | (boot_high < 0)).sum()) <= high


def test_the_planned_sample_size_delivers_its_power() -> None:
    """At the formula's n per arm, an effect of exactly the MDE is found ~80 % of the time."""
    base, mde, runs = 0.10, 0.03, 2000
    n = stats.sample_size_per_arm(base, mde, alpha=0.05, power=0.8)
    rng = np.random.default_rng(11)
    found = stats.two_proportion_ztest(
        rng.binomial(n, base + mde, runs), n, rng.binomial(n, base, runs), n
    ).p_value
    low, high = binom.interval(0.999, runs, 0.8)
    assert low <= int((found < 0.05).sum()) <= high


def test_sample_size_matches_the_textbook() -> None:
    """Fleiss, Levin & Paik (2003), no continuity correction: 10 % vs 15 %, two-sided
    alpha 0.05, power 0.8 needs 686 per group."""
    assert stats.sample_size_per_arm(0.10, 0.05, alpha=0.05, power=0.8) == 686
    assert stats.sample_size_per_arm(0.15, -0.05) == 686  # the same two rates, named the other way
    assert stats.sample_size_per_arm(0.10, 0.05, power=0.9) > 686
    assert stats.sample_size_per_arm(0.10, 0.025) > 4 * 686 * 0.9  # ~1/mde^2
    assert stats.required_users(0.99, 0.05, alpha=0.05, power=0.8) is not None  # tests a drop
    assert stats.required_users(float("nan"), 0.05, alpha=0.05, power=0.8) is None
    for bad in [(0.10, 0.0), (0.98, 0.05), (-0.1, 0.05)]:
        with pytest.raises(ValueError):
            stats.sample_size_per_arm(*bad)


def test_the_bootstrap_interval_is_close_to_the_z_interval_and_to_resampling_users() -> None:
    result = analysis.analyze(outcomes_frame({"control": 0.10, "treatment": 0.12}, 5000, seed=3))
    (c,) = result.comparisons
    assert abs(c.boot_low - c.z_low) < 0.002
    assert abs(c.boot_high - c.z_high) < 0.002
    # the binomial shortcut is the same bootstrap as resampling users, by explicit resampling
    rng = np.random.default_rng(5)
    n = 300
    treated, control = np.r_[np.ones(45), np.zeros(n - 45)], np.r_[np.ones(30), np.zeros(n - 30)]
    draws = treated[rng.integers(0, n, (4000, n))].mean(axis=1) - control[
        rng.integers(0, n, (4000, n))
    ].mean(axis=1)
    explicit = np.quantile(draws, [0.025, 0.975])
    low, high = stats.bootstrap_diff_ci(45, n, 30, n, resamples=4000, seed=6)
    assert abs(float(low) - explicit[0]) < 0.006
    assert abs(float(high) - explicit[1]) < 0.006


def test_empty_arms_give_no_numbers_rather_than_errors() -> None:
    test = stats.two_proportion_ztest([0, 5], [0, 10], 0, 10)
    assert np.isnan(test.p_value[0]) and test.p_value[1] < 0.05
    assert stats.two_proportion_ztest(0, 10, 0, 10).p_value == 1.0  # both 0 %: no evidence
    low, high = stats.bootstrap_diff_ci(3, 10, 0, 0)
    assert np.isnan(low) and np.isnan(high)
    only_treatment = outcomes_frame({"treatment": 0.2}, 100)
    result = analysis.analyze(only_treatment)
    assert result.verdict.label == "no difference yet"
    assert result.as_dict()["comparisons"][0]["p_value"] is None  # JSON-ready, not NaN
    json.dumps(result.as_dict(), allow_nan=False)


# --- the verdict rule -----------------------------------------------------------------------


def evidence(variant: str, diff: float, p: float, users: int, required: int | None = 1000):
    return SimpleNamespace(
        variant=variant,
        diff=diff,
        p_value=p,
        users=users,
        control_users=users,
        required_users=required,
    )


@pytest.mark.parametrize(
    ("cases", "label"),
    [
        ([evidence("t", 0.03, 0.001, 1000)], "winner: t"),
        ([evidence("t", 0.03, 0.001, 999)], "no difference yet"),  # ahead, too early
        ([evidence("t", -0.03, 0.001, 200)], "stop: t is worse"),  # harm stops early
        ([evidence("t", 0.01, 0.30, 5000)], "stop: no difference"),
        ([evidence("t", 0.01, 0.30, 500)], "no difference yet"),
        ([evidence("t", 0.03, 0.049, 5000)], "stop: no difference"),  # p > the per-test level
        ([evidence("t", math.nan, math.nan, 0, None)], "no difference yet"),
        ([evidence("a", 0.02, 0.001, 2000), evidence("b", 0.04, 0.001, 2000)], "winner: b"),
        ([evidence("a", -0.02, 0.001, 90), evidence("b", -0.04, 0.001, 90)], "stop: b is worse"),
        ([evidence("a", 0.01, 0.5, 2000), evidence("b", 0.0, 0.9, 50)], "no difference yet"),
    ],
)
def test_verdict_rule(cases: list, label: str) -> None:
    verdict = stats.verdict(cases, 0.04)
    assert verdict.label == label
    assert str(verdict) == label and verdict.reason


def test_alpha_is_split_over_treatments_and_looks() -> None:
    """p between alpha/6 and alpha: significant for one look at one treatment, not for two
    treatments at three looks; the planned sample grows with the stricter level."""
    frame = counts_frame({"control": (6000, 600), "t1": (6000, 672), "t2": (6000, 600)})
    once = analysis.analyze(frame, variants=["t1"])
    assert once.alpha_per_test == 0.05
    assert 0.05 / 6 < once.comparisons[0].p_value < 0.05
    assert once.verdict.label == "winner: t1"
    careful = analysis.analyze(frame, looks=3)
    assert careful.alpha_per_test == pytest.approx(0.05 / 6)
    assert careful.verdict.label != "winner: t1"
    assert careful.comparisons[0].required_users > once.comparisons[0].required_users


# --- the user-level input -------------------------------------------------------------------


def test_users_count_once_bad_rows_are_dropped_and_the_window_applies() -> None:
    frame = pd.DataFrame(
        {
            "user": [1, 1, 2, 3, 4, None, 6, 7],
            "variant": ["treatment", "control", "control", "Bad Name", "control", "control",
                        "control", "treatment"],
            "first_exposure": pd.to_datetime(
                ["2025-03-02", "2025-03-01", "2025-03-01", "2025-03-01", "2025-02-01",
                 "2025-03-01", "not a time", "2025-03-03"],
                errors="coerce",
            ),
            "converted": [True, False, True, True, True, True, True, False],
        }
    )  # fmt: skip
    users, dropped = analysis.user_outcomes(frame, since=T0)
    assert users.set_index("user")["variant"].to_dict() == {
        1: "control",  # met control first; the later treatment row does not count
        2: "control",
        7: "treatment",
    }
    assert dropped == {"unusable_rows": 3, "outside_window": 1, "later_variant_rows": 1}
    with pytest.raises(ValueError, match="converted"):
        analysis.analyze(frame.drop(columns=["converted"]))


# --- the definition -------------------------------------------------------------------------

names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)
times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@st.composite
def experiments(draw) -> Experiment:
    arms = draw(st.lists(names, min_size=2, max_size=4, unique=True))
    variants = {a: draw(st.from_regex(r"[0-9]{1,17}", fullmatch=True)) for a in arms}
    weights = {a: draw(st.integers(0, 10**6)) for a in arms}
    if not any(weights.values()):
        weights[arms[0]] = 1
    started = draw(st.none() | times)
    stopped = None if started is None else draw(st.none() | st.just(started + timedelta(days=3)))
    draft = Experiment(
        draw(names),
        variants,
        weights,
        draw(st.sampled_from(["fixed", "bandit"])),
        draw(st.floats(0, 1 / len(arms))),
        draw(st.sampled_from(arms)),
        started,
        stopped,
    )
    for _ in range(draw(st.integers(0, 3))):
        draft = draft.with_split(weights, draw(times), draw(st.sampled_from(["manual", "bandit"])))
    return draft


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(experiments())
def test_a_definition_round_trips_through_json(experiment: Experiment) -> None:
    assert Experiment.from_json(experiment.to_json()) == experiment


@settings(max_examples=150, deadline=None)
@given(experiments(), st.sampled_from(sorted(Experiment.__dataclass_fields__)), json_values)
def test_a_corrupted_definition_is_refused_or_valid_never_a_crash(
    experiment: Experiment, field: str, value: object
) -> None:
    raw = experiment.to_dict()
    raw.pop("status")
    raw[field] = value
    for text in (json.dumps(raw), json.dumps(value), json.dumps(raw)[:-3]):
        try:
            parsed = Experiment.from_json(text)
        except DefinitionError:
            continue
        assert ab.parse_split({k: str(w) for k, w in parsed.weights.items()}).variants


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), st.integers(-3, 50), max_size=4))
def test_weights_are_accepted_exactly_when_the_service_would_route_by_them(
    weights: dict[str, int],
) -> None:
    variants = dict.fromkeys(weights, "v1")
    try:
        ab.parse_split({k: str(w) for k, w in weights.items()})
        service_ok = True
    except ValueError:
        service_ok = False
    try:
        Experiment("e", variants, weights, control=next(iter(weights), "control"))
        ours_ok = True
    except DefinitionError:
        ours_ok = False
    if len(weights) >= 2:  # an experiment needs two variants; the service routes by one too
        assert ours_ok == service_ok


# --- the store, against real Redis ----------------------------------------------------------


def test_experiment_keys_are_single_colon_so_no_version_cleanup_matches_them() -> None:
    for key in (rediskeys.EXPERIMENT, rediskeys.EXPERIMENTS):
        assert key.count(":") == 1
        for version in ("experiment", "experiments", "*"):
            assert not fnmatch.fnmatchcase(key, rediskeys.version_pattern(version))


def test_start_change_and_stop_as_the_service_reads_them(
    published: redis.Redis, redis_url: str
) -> None:
    client = published
    started = store.start(client, draft(), now=T0)
    assert started.status == "running" and started.started_at == T0
    raw = redis.Redis.from_url(redis_url)  # the service's client: bytes, not decoded
    split = ab.parse_split(raw.hgetall(rediskeys.SPLIT))
    assert split.variants == ("control", "treatment")
    shares = pd.Series([split.assign(u) for u in range(1, 20_001)]).value_counts(normalize=True)
    assert abs(shares["treatment"] - 0.10) < 0.01
    assert client.hgetall(rediskeys.VARIANT_VERSIONS) == {"control": "v1", "treatment": "v2"}
    assert store.status(client)["live_matches_definition"] is True

    with pytest.raises(store.RefusedError, match="running"):
        store.start(client, draft(name="exp2"))
    changed = store.change_split(client, {"control": 50, "treatment": 50}, now=T0 + timedelta(1))
    assert client.hgetall(rediskeys.SPLIT) == {"control": "50", "treatment": "50"}
    assert [c.weights["treatment"] for c in changed.history] == [10, 50]
    with pytest.raises(DefinitionError):
        store.change_split(client, {"control": 50})  # a variant left out
    with pytest.raises(store.RefusedError, match="not other"):
        store.change_split(client, {"control": 1, "treatment": 1}, name="other")
    assert client.hgetall(rediskeys.SPLIT) == {"control": "50", "treatment": "50"}

    stopped = store.stop(client, now=T0 + timedelta(days=2))
    assert stopped is not None and stopped.status == "stopped"
    assert raw.hgetall(rediskeys.SPLIT) == {} and raw.hgetall(rediskeys.VARIANT_VERSIONS) == {}
    assert ab.parse_split(raw.hgetall(rediskeys.SPLIT)) == ab.EVERYONE_IN_CONTROL
    assert store.running(client) is None
    kept = store.load(client, "exp1")
    assert kept == stopped and kept.stopped_at == T0 + timedelta(days=2)
    assert store.stop(client) is None  # stopping twice is harmless
    with pytest.raises(store.RefusedError, match="used before"):
        store.start(client, draft())
    assert store.start(client, draft(name="exp2")).status == "running"
    raw.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--variant", "control=v1", "--variant", "treatment=v9"], "not published"),
        (["--variant", "control=v1", "--variant", "Treatment=v2"], "bad variant name"),
        ([*BOTH, "--weight", "control=0", "--weight", "treatment=0"], "every weight is 0"),
        ([*BOTH, "--weight", "control=1", "--weight", "treatment=0.5"], "integer"),
        (["--variant", "treatment=v2", "--variant", "other=v3"], "control"),
    ],
)
def test_an_invalid_start_is_refused_with_nothing_written(
    cli_redis: str, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    before = keyspace(cli_redis)
    assert main(["start", "exp1", *argv]) == 1
    assert message in capsys.readouterr().err
    assert keyspace(cli_redis) == before


def test_a_split_set_by_hand_blocks_a_start_until_stop_clears_it(published: redis.Redis) -> None:
    published.hset(rediskeys.SPLIT, mapping={"control": 1, "manual": 1})
    with pytest.raises(store.RefusedError, match="outside an experiment"):
        store.start(published, draft())
    assert store.stop(published) is None
    assert published.exists(rediskeys.SPLIT) == 0
    assert store.start(published, draft()).status == "running"


def test_a_version_pinned_by_a_running_experiment_survives_pruning_until_it_stops(
    redis_client: redis.Redis, publisher
) -> None:
    old = publisher.publish_lists(redis_client, "old")
    new = publisher.publish_lists(redis_client, "new")
    store.start(redis_client, draft(variants={"control": new.version, "treatment": old.version}))
    for tag in ("b", "c"):
        publisher.publish_lists(redis_client, tag)  # keep=2 would prune "old" if nothing pinned it
    assert publisher.user_keys(redis_client, old.version)
    store.stop(redis_client)
    assert old.version in publisher.publish_lists(redis_client, "d").removed
    assert old.version not in versions.published(redis_client)


# --- the bandit -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=6),
    st.floats(0, 0.5),
    st.sampled_from([100, ab.BUCKETS]),
)
def test_integer_weights_sum_to_the_total_and_respect_the_floor(
    shares: list[float], floor: float, total: int
) -> None:
    weights = bandit.integer_weights(shares, floor=floor, total=total)
    assert sum(weights) == total and len(weights) == len(shares)
    if floor * len(shares) <= 1:
        assert min(weights) >= min(math.ceil(floor * total - 1e-9), total // len(shares))
    if sum(shares) > 0 and floor == 0:
        best = int(np.argmax(shares))
        assert weights[best] == max(weights)


def test_thompson_shares_favour_the_better_arm_and_are_seeded() -> None:
    shares = bandit.win_shares([100, 200], [1000, 1000], draws=5000, seed=1)
    assert shares[1] > 0.99 and shares.sum() == pytest.approx(1)
    assert np.array_equal(shares, bandit.win_shares([100, 200], [1000, 1000], draws=5000, seed=1))
    even = bandit.win_shares([0, 0, 0], [0, 0, 0], draws=30_000, seed=2)
    assert np.allclose(even, 1 / 3, atol=0.02)  # no data: the prior, all arms alike


def test_bandit_steps_move_traffic_to_the_better_arm_and_keep_the_floor(
    published: redis.Redis,
) -> None:
    """Six rounds: new users arrive, are routed by the split in Redis exactly as the
    service routes them, convert at their arm's rate, then the bandit updates the split."""
    client = published
    rates = {"control": 0.10, "a": 0.10, "b": 0.16}
    variants = {"control": "v1", "a": "v2", "b": "v3"}
    experiment = Experiment("mab", variants, dict.fromkeys(variants, 1), "bandit", floor=0.05)
    store.start(client, experiment, now=T0)
    rng = np.random.default_rng(4)
    frames = []
    for round_ in range(6):
        split = ab.parse_split(client.hgetall(rediskeys.SPLIT))
        users = np.arange(round_ * 3000 + 1, (round_ + 1) * 3000 + 1)
        arms = np.array([split.assign(int(u)) for u in users])
        converted = rng.random(users.size) < np.vectorize(rates.get)(arms)
        frames.append(
            pd.DataFrame(
                {
                    "user": users,
                    "variant": arms,
                    "first_exposure": pd.Timestamp("2025-03-01") + pd.Timedelta(hours=round_),
                    "converted": converted,
                }
            )
        )
        now = T0 + timedelta(hours=round_, minutes=30)
        stepped = bandit.step(client, pd.concat(frames), draws=4000, seed=0, now=now)
    weights = {k: int(v) for k, v in client.hgetall(rediskeys.SPLIT).items()}
    assert weights == dict(stepped.weights) and sum(weights.values()) == ab.BUCKETS
    assert weights["b"] >= 0.8 * ab.BUCKETS
    assert min(weights.values()) >= 0.05 * ab.BUCKETS
    assert [c.source for c in stepped.history] == ["start", *["bandit"] * 6]
    fixed = Experiment("fixed", variants, dict.fromkeys(variants, 1))
    store.stop(client)
    store.start(client, fixed)
    with pytest.raises(store.RefusedError, match="fixed split"):
        bandit.step(client, pd.concat(frames))


# --- the report and the CLI -----------------------------------------------------------------


def test_the_report_has_the_verdict_and_png_plots(published: redis.Redis, tmp_path: Path) -> None:
    experiment = Experiment(
        "report-me", {"control": "v1", "treatment": "v2"}, {"control": 1, "treatment": 1}, "bandit"
    )
    store.start(published, experiment, now=T0)
    outcomes = outcomes_frame({"control": 0.10, "treatment": 0.14}, 5000)
    bandit.step(published, outcomes, draws=2000, now=T0 + timedelta(days=1))
    running = store.running(published)
    settings_ = Settings(report_dir=tmp_path)
    result, files = review.report_experiment(running, outcomes, settings_, tmp_path)
    assert result.verdict.label == "winner: treatment"
    users, _ = analysis.user_outcomes(outcomes, since=T0)
    curves = analysis.timeline(users, "D")
    assert (curves.groupby("variant")["users"].diff().dropna() > 0).all()  # cumulative
    last = curves.groupby("variant").last()
    assert last["users"].tolist() == [v.users for v in result.variants]
    assert last["conversions"].tolist() == [v.conversions for v in result.variants]
    assert ((curves["low"] <= curves["rate"]) & (curves["rate"] <= curves["high"])).all()
    directory = tmp_path / "report-me"
    assert {f.name for f in files} == {
        experiment_report.MARKDOWN,
        experiment_report.CONVERSION_PNG,
        experiment_report.SPLIT_PNG,
    }
    for name in (experiment_report.CONVERSION_PNG, experiment_report.SPLIT_PNG):
        png = (directory / name).read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 5000
    text = (directory / experiment_report.MARKDOWN).read_text()
    assert "**Verdict: winner: treatment**" in text
    assert "| treatment | v2 |" in text and "![conversion.png](conversion.png)" in text


def test_cli_runs_an_experiment_end_to_end(
    published: redis.Redis, cli_redis: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:

    def cli(*argv: str) -> dict:
        assert main(list(argv)) == 0
        return json.loads(capsys.readouterr().out)

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "bandit-step" in capsys.readouterr().out
    started = cli("start", "cli-exp", "--variant", "control=active", "--variant", "treatment=v2")
    assert started["variants"] == {"control": "v1", "treatment": "v2"}
    assert started["weights"] == {"control": 1, "treatment": 1}
    assert cli("split", "--weight", "control=3", "--weight", "treatment=1")["weights"] == {
        "control": 3,
        "treatment": 1,
    }
    assert cli("status")["running"]["name"] == "cli-exp"
    path = tmp_path / "outcomes.csv"
    # exposures after the start (the CLI started it now), so the window keeps them
    outcomes_frame(
        {"control": 0.10, "treatment": 0.10}, 400, start=datetime.now(UTC) + timedelta(minutes=1)
    ).to_csv(path, index=False)
    analysed = cli("analyze", str(path), "--experiment", "cli-exp")
    assert analysed["verdict"] == "no difference yet"
    assert [v["users"] for v in analysed["variants"]] == [400, 400]
    assert cli("analyze", str(path), "--alpha", "0.01")["alpha_per_test"] == 0.01
    files = cli("report", str(path), "--out", str(tmp_path / "reports"))["files"]
    assert Path(files[0]).read_text().count("no difference yet") >= 1
    assert cli("stop")["stopped"]["status"] == "stopped"
    assert published.exists(rediskeys.SPLIT, rediskeys.VARIANT_VERSIONS) == 0
    assert main(["bandit-step", str(path)]) == 1
    assert "no experiment is running" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing.csv")]) == 1
    assert "missing.csv" in capsys.readouterr().err
    assert main(["analyze", str(path), "--alpha", "2"]) == 1
    assert "alpha" in capsys.readouterr().err
    path.write_text("user,variant\n1,control\n")
    assert main(["analyze", str(path)]) == 1
    assert "lack columns" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value"),
    [("EXPERIMENT_ALPHA", "2"), ("EXPERIMENT_REPORT_BUCKET", "W"), ("BANDIT_DRAWS", "0")],
)
def test_a_bad_setting_is_named_and_refused_before_anything_runs(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exc:
        main(["status"])
    assert exc.value.code == 2 and variable in capsys.readouterr().err
    monkeypatch.setenv(variable, "")  # empty is unset: the documented default
    assert Settings.from_env().alpha == 0.05
