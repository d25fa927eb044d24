"""What an experiment is (``experiments.definition``): a definition round-trips through
JSON, a corrupted one is refused or valid but never a crash, and weights are accepted exactly
when the service would route by them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import ab
from experiments.definition import DefinitionError, Experiment

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
