"""Experiments in Redis: start, change the split, stop, and read what runs.

The service routes by ``rediskeys.SPLIT`` and ``rediskeys.VARIANT_VERSIONS`` and re-reads
them every few seconds, so starting, changing or stopping an experiment needs no redeploy.
Every change here is one ``MULTI``/``EXEC`` that writes the split, the variants' versions
and the definition (``rediskeys.EXPERIMENTS``) together, guarded by ``WATCH`` on what it
checked: a concurrent start, a split change, or a publish or prune of ``rediskeys.VERSIONS``
makes it re-check and retry, never half-apply. Refusals raise before anything is written.
Every key involved is a control key (one hash tag, one slot), so the same transactions run
on Redis Cluster; ``connect`` makes this package's client for any REDIS_MODE.

One experiment runs at a time (``rediskeys.EXPERIMENT`` names it). Stopping deletes the
split and the variants' versions, so every user is back in ``control`` on ``rediskeys.ACTIVE``;
the definition stays, with ``stopped_at`` and its split history, for the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import redis

from contracts import ab, rediskeys
from contracts.locations import RedisTopology
from experiments.definition import DefinitionError, Experiment
from redisconn.clients import Client, open_client


def connect(url: str, topology: RedisTopology) -> Client:
    """The experiments' client (decoded replies) for REDIS_URL laid out as ``topology``."""
    return open_client(url, topology, decode_responses=True)


class RefusedError(RuntimeError):
    """The change cannot be made in the state Redis is in; nothing was written."""


def start(client: Client, experiment: Experiment, *, now: datetime | None = None) -> Experiment:
    """Start a draft experiment: its split and versions go live at once. RefusedError while
    another runs, when its name was used before, when a split not made by an experiment is
    set, or when a version is not published (listed in ``rec:{ctl}:versions``)."""
    if experiment.status != "draft":
        raise RefusedError(f"experiment {experiment.name} is {experiment.status}, not a draft")
    now = now or datetime.now(UTC)
    started = replace(experiment, started_at=now).with_split(experiment.weights, now, "start")

    def write(pipe: redis.client.Pipeline) -> None:
        running = pipe.get(rediskeys.EXPERIMENT)
        if running is not None:
            raise RefusedError(f"experiment {_text(running)} is running: stop it first")
        if pipe.hexists(rediskeys.EXPERIMENTS, experiment.name):
            raise RefusedError(f"the name {experiment.name} was used before: pick a new one")
        if pipe.exists(rediskeys.SPLIT, rediskeys.VARIANT_VERSIONS):
            raise RefusedError(
                f"{rediskeys.SPLIT} or {rediskeys.VARIANT_VERSIONS} is set outside an "
                "experiment: `stop` clears it"
            )
        # Members only (no withscores), which redis-py's return type does not tell apart.
        members = cast("list[bytes | str]", pipe.zrange(rediskeys.VERSIONS, 0, -1))
        published = {_text(v) for v in members}
        missing = sorted(set(experiment.variants.values()) - published)
        if missing:
            raise RefusedError(f"versions not published (not in {rediskeys.VERSIONS}): {missing}")
        pipe.multi()
        pipe.set(rediskeys.EXPERIMENT, experiment.name)
        pipe.hset(rediskeys.EXPERIMENTS, experiment.name, started.to_json())
        # redis-py types the mapping Mapping[FieldT, ...]: invariant key, so no dict[str, str].
        pipe.hset(rediskeys.SPLIT, mapping=_split_fields(started.weights))  # type: ignore[arg-type]
        pipe.hset(rediskeys.VARIANT_VERSIONS, mapping=dict(started.variants))  # type: ignore[arg-type]

    client.transaction(
        write,
        rediskeys.EXPERIMENT,
        rediskeys.EXPERIMENTS,
        rediskeys.SPLIT,
        rediskeys.VARIANT_VERSIONS,
        rediskeys.VERSIONS,
    )
    return started


def change_split(
    client: Client,
    weights: Mapping[str, int],
    *,
    source: str = "manual",
    now: datetime | None = None,
    name: str | None = None,
) -> Experiment:
    """Give the running experiment (refused unless it is ``name``, when given) a new split:
    one weight per variant, integers, not all 0; recorded in its history. Growing a variant
    moves users into it from its neighbour only (``contracts.ab``)."""
    now = now or datetime.now(UTC)
    result: list[Experiment] = []

    def write(pipe: redis.client.Pipeline) -> None:
        result.clear()
        experiment = _running_or_refuse(pipe)
        if name is not None and experiment.name != name:
            raise RefusedError(f"experiment {experiment.name} runs now, not {name}")
        changed = experiment.with_split(weights, now, source)
        result.append(changed)
        pipe.multi()
        pipe.hset(rediskeys.EXPERIMENTS, changed.name, changed.to_json())
        pipe.delete(rediskeys.SPLIT)
        # redis-py types the mapping Mapping[FieldT, ...]: invariant key, so no dict[str, str].
        pipe.hset(rediskeys.SPLIT, mapping=_split_fields(changed.weights))  # type: ignore[arg-type]

    client.transaction(write, rediskeys.EXPERIMENT, rediskeys.EXPERIMENTS)
    return result[0]


def stop(client: Client, *, now: datetime | None = None) -> Experiment | None:
    """Send everyone back to ``control`` on ``rec:{ctl}:active``; returns the experiment stopped
    (None when none ran: any split left by hand is cleared all the same, and so is the
    split of an experiment whose stored definition no longer parses)."""
    now = now or datetime.now(UTC)
    result: list[Experiment] = []

    def write(pipe: redis.client.Pipeline) -> None:
        result.clear()
        name = pipe.get(rediskeys.EXPERIMENT)
        experiment = _load_or_none(pipe, _text(name)) if name is not None else None
        pipe.multi()
        pipe.delete(rediskeys.SPLIT, rediskeys.VARIANT_VERSIONS, rediskeys.EXPERIMENT)
        if experiment is not None and experiment.status == "running":
            stopped = replace(experiment, stopped_at=max(now, experiment.started_at or now))
            pipe.hset(rediskeys.EXPERIMENTS, stopped.name, stopped.to_json())
            result.append(stopped)

    client.transaction(write, rediskeys.EXPERIMENT, rediskeys.EXPERIMENTS)
    return result[0] if result else None


def load(client: Client, name: str) -> Experiment | None:
    """The named experiment's definition (running or stopped); None if there is none.
    Raises ``DefinitionError`` if what is stored does not parse."""
    raw = client.hget(rediskeys.EXPERIMENTS, name)
    return None if raw is None else Experiment.from_json(raw)


def running(client: Client) -> Experiment | None:
    name = client.get(rediskeys.EXPERIMENT)
    return None if name is None else load(client, _text(name))


def names(client: Client) -> list[str]:
    """Every experiment ever started and not deleted, by name."""
    return sorted(_text(name) for name in client.hkeys(rediskeys.EXPERIMENTS))


def status(client: Client) -> dict[str, Any]:
    """What runs, and whether the live split and versions are the ones it set (they differ
    only if someone wrote the hashes by hand)."""
    with client.pipeline(transaction=True) as pipe:
        pipe.get(rediskeys.EXPERIMENT)
        pipe.hgetall(rediskeys.SPLIT)
        pipe.hgetall(rediskeys.VARIANT_VERSIONS)
        name, raw_split, raw_versions = pipe.execute()
    split = {_text(k): _text(v) for k, v in raw_split.items()}
    versions = {_text(k): _text(v) for k, v in raw_versions.items()}
    state: dict[str, Any] = {
        "running": None,
        "split": split,
        "variant_versions": versions,
        "experiments": names(client),
    }
    if name is not None:
        try:
            experiment = load(client, _text(name))
        except DefinitionError as exc:
            state["error"] = f"definition of {_text(name)} unreadable: {exc}"
            return state
        if experiment is not None:
            state["running"] = experiment.to_dict()
            state["live_matches_definition"] = split == _split_fields(
                experiment.weights
            ) and versions == dict(experiment.variants)
    return state


def _running_or_refuse(pipe: redis.client.Pipeline) -> Experiment:
    name = pipe.get(rediskeys.EXPERIMENT)
    if name is None:
        raise RefusedError("no experiment is running")
    experiment = load(pipe, _text(name))
    if experiment is None:
        raise RefusedError(f"experiment {_text(name)} is running but has no definition: stop it")
    return experiment


def _load_or_none(pipe: redis.client.Pipeline, name: str) -> Experiment | None:
    try:
        return load(pipe, name)
    except DefinitionError:
        return None


def _split_fields(weights: Mapping[str, int]) -> dict[str, str]:
    """``rec:{ctl}:split`` as the service parses it (``ab.parse_split``): decimal integers."""
    fields = {variant: str(int(weight)) for variant, weight in weights.items()}
    ab.parse_split(fields)  # the definition guarantees it; a failure here is a bug, loudly
    return fields


def _text(value: bytes | str) -> str:
    """Clients may or may not decode responses; accept both."""
    return value.decode() if isinstance(value, bytes) else value
