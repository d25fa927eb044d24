"""The Airflow DAGs, run for real with ``dag.test()`` (``python -m devstack.retrain``) on small
simulated snapshots and a real Redis: their shape, what parsing them imports, a full retrain
(gate, publish, verify, report), a dry run, failures that leave the published version
serving, and the maintenance DAG's pruning and rollback. Also the verify step on its own,
through a real HTTP server running the service app."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from werkzeug.serving import make_server

from contracts import rediskeys
from contracts.response import VERSION_HEADER, parse_body
from devstack.servers import LOOPBACK
from ingest.drift import DriftBounds
from ingest.events import parse_line
from ingest.journal import Journal, SegmentBuilder
from ingest.snapshot import SnapshotStore
from precompute import steps
from precompute.settings import Settings as PrecomputeSettings
from precompute.verify import VerifyError, verify_published
from precompute.versions import PublishError, published
from service.app import create_app
from service.settings import Settings as ServiceSettings
from simulator.snapshots import simulated_snapshot
from simulator.traffic import simulate_lines
from training.registry import ModelRegistry
from training.settings import Settings as TrainingSettings
from training.train import train

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
TOPIC = "movielog"  # the simulated journal's topic (simulator.snapshots.TOPIC)


def run_dag(
    env: dict[str, str], dag: str = "recsys_retrain", conf: dict | None = None
) -> tuple[dict, dict[str, str]]:
    """Run ``dag`` with ``dag.test()`` in its own process; returns the printed result and the
    state of each task instance (``task`` or ``task[i]``), read from the run's metadata DB."""
    home = Path(env["RECSYS_DATA_DIR"]) / "airflow"
    done = subprocess.run(
        [PY, "-m", "devstack.retrain", "--dag", dag, "--airflow-home", str(home),
         "--conf", json.dumps(conf or {})],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert lines, f"no result:\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert done.returncode == (0 if result["state"] == "success" else 1)
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT task_id, map_index, state FROM task_instance").fetchall()
    states = {(f"{t}[{i}]" if i >= 0 else t): s for t, i, s in rows}
    return result, states


def describe(dag: str, tmp_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RECSYS_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [PY, "-m", "devstack.retrain", "--dag", dag, "--describe"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture
def world(tmp_path: Path, redis_url: str) -> dict[str, str]:
    """A simulated snapshot (300 users, 10 days) and the environment a DAG run gets."""
    data = tmp_path / "data"
    simulated_snapshot(data, users=300, movies=250, days=10, seed=3)
    return pipeline_env(data, redis_url)


def pipeline_env(data: Path, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RECSYS_DATA_DIR": str(data),
        "KAFKA_TOPIC": TOPIC,
        "REDIS_URL": redis_url,
        "SVD_EPOCHS": "10",
        "NEURAL_DEVICE": "cpu",
        # 300 users is too little for any model to beat popularity by the default 10%: the
        # margin is relaxed, as in the end-to-end test (tests/training/test_gate.py judges models).
        "GATE_MIN_LIFT": "-0.5",
        "PRECOMPUTE_SHARDS": "2",
        "RECSYS_RETRY_DELAY_SECONDS": "1",
        "ROLLBACK_GRACE_SECONDS": "0",
    }


def publish_baseline(data: Path, redis_url: str, keep: int = 2) -> str:
    """A version published the quick way (popularity, no DAG): what must keep serving."""
    meta = train("popularity", settings=TrainingSettings(data_dir=data))
    ModelRegistry(data).set_production(meta.version)
    settings = PrecomputeSettings(data_dir=data, redis_url=redis_url, keep_versions=keep)
    return steps.publish(meta.version, settings).version


def read_report(data: Path, run_id: str) -> tuple[dict, str]:
    reports = data / "reports"
    return (
        json.loads((reports / f"{run_id}.json").read_text()),
        (reports / f"{run_id}.md").read_text(),
    )


def answers_through_service(redis_url: str, version: str) -> None:
    """The service app answers a known user with ``version``'s stored list."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = next(client.scan_iter(match=rediskeys.user_pattern(version)))
    app = create_app(ServiceSettings(redis_url=redis_url, request_log="off"))
    answer = app.test_client().get(f"/recommend/{rediskeys.user_of(version, key)}")
    assert answer.status_code == 200
    assert answer.headers[VERSION_HEADER] == version
    assert answer.get_data(as_text=True) == client.get(key)
    assert len(set(parse_body(answer.get_data(as_text=True)))) == 20


# --- shape and parsing ----------------------------------------------------------------------


def test_dagbag_imports_both_dags_with_the_expected_graph(tmp_path: Path) -> None:
    assert describe("recsys_retrain", tmp_path) == {
        "dag_id": "recsys_retrain",
        "tasks": {
            "pick_snapshot": ["report", "validate_snapshot"],
            "validate_snapshot": ["train"],
            "train": ["evaluate"],
            "evaluate": ["gate", "report"],
            "gate": ["begin_publish"],
            "begin_publish": ["finalize_publish", "precompute_shard"],
            "precompute_shard": ["finalize_publish"],
            "finalize_publish": ["report", "verify"],
            "verify": ["report"],
            "report": [],
        },
        "params": ["allow_suspect", "dry_run", "models", "snapshot_id"],
    }
    assert describe("recsys_maintenance", tmp_path) == {
        "dag_id": "recsys_maintenance",
        "tasks": {"rollback": ["prune_versions"], "prune_versions": [], "prune_snapshots": []},
        "params": ["rollback"],
    }


HEAVY = ("torch", "pandas", "pyarrow", "surprise", "sklearn", "scipy", "matplotlib")
OURS = ("ingest", "training", "precompute", "service", "devstack")

PARSE = """
import importlib.util, json, sys, time
sys.path.insert(0, {dags!r})
import airflow.sdk
before = set(sys.modules)
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", {path!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
seconds = time.perf_counter() - started
new = sorted(m.split(".")[0] for m in set(sys.modules) - before)
print(json.dumps({{"seconds": seconds, "new": sorted(set(new))}}))
"""


@pytest.mark.parametrize("name", ["recsys_retrain", "recsys_maintenance"])
def test_parsing_a_dag_file_imports_nothing_heavy(name: str) -> None:
    """With Airflow already imported (as in the DAG processor), a DAG file adds neither the
    project's packages nor any heavy library; the time it takes is printed, not judged."""
    dags = REPO / "dags"
    code = PARSE.format(dags=str(dags), path=str(dags / f"{name}.py"))
    done = subprocess.run(
        [PY, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(done.stdout.splitlines()[-1])
    print(f"{name}: parsed in {result['seconds'] * 1000:.1f} ms")
    assert not set(result["new"]) & set(HEAVY + OURS), result["new"]


# --- recsys_retrain -------------------------------------------------------------------------


def test_retrain_promotes_the_better_model_publishes_verifies_and_reports(
    world: dict[str, str], redis_url: str, redis_client: redis.Redis
) -> None:
    data = Path(world["RECSYS_DATA_DIR"])
    result, states = run_dag(world)
    assert result["state"] == "success", states
    # The default candidates, mapped: the neural model, the top-N SVD and EASE.
    assert [states[f"train[{i}]"] for i in range(3)] == ["success"] * 3

    # The gate: one decision per model; the highest NDCG@20 of those that passed is promoted.
    decisions = ModelRegistry(data).decisions()
    assert sorted(d["candidate"].split("-")[0] for d in decisions) == [
        "ease",
        "multdae",
        "puresvd",
    ]
    winner, *losers = sorted(decisions, key=lambda d: -d["candidate_score"])
    assert winner["passed"] and winner["chosen"] and winner["promoted"]
    assert f"best of 3 candidates by {winner['metric']}" in winner["reasons"]
    for loser in losers:
        assert not loser["promoted"] and not loser["chosen"]
        if loser["passed"]:
            assert any(f"but {winner['candidate']} ranks first" in r for r in loser["reasons"])
        else:  # 300 simulated users: one may trail popularity even by the relaxed margin
            assert any("not clearly better than popularity" in r for r in loser["reasons"])
    assert any(loser["passed"] for loser in losers)  # a passing runner-up is reported as such
    assert ModelRegistry(data).production().version == winner["candidate"]

    # Published: the winner's lists are what Redis serves, in 2 shards, every user.
    version = redis_client.get(rediskeys.ACTIVE)
    meta = redis_client.hgetall(rediskeys.meta(version))
    assert meta["model_version"] == winner["candidate"]
    assert meta["shards"] == "2"
    assert states["precompute_shard[0]"] == states["precompute_shard[1]"] == "success"
    users = SnapshotStore(data).manifest().rows["users"]
    assert int(meta["users"]) == users
    answers_through_service(redis_url, version)

    # Verified and reported.
    assert states["verify"] == states["report"] == "success"
    report, text = read_report(data, result["run_id"])
    assert report["dry_run"] is False
    assert report["serving"]["version"] == version
    assert report["serving"]["model_version"] == winner["candidate"]
    assert report["production_model"] == winner["candidate"]
    assert report["chosen"] == winner["candidate"]
    assert report["published"]["users"] == users
    assert report["verified"] == {
        "version": version,
        "users": 50,  # VERIFY_SAMPLE's default
        "service_url": None,
        "service_users": 0,
    }
    assert report["snapshot"]["rows"]["users"] == users
    by_version = {c["version"]: c for c in report["candidates"]}
    assert by_version[winner["candidate"]]["promoted"]
    for loser in losers:
        assert by_version[loser["candidate"]]["reasons"] == loser["reasons"]
    ran = {t["task"]: t for t in report["tasks"]}
    assert {"pick_snapshot", "train[0]", "train[1]", "gate", "verify"} <= set(ran)
    assert ran["train[0]"]["state"] == "success" and ran["train[0]"]["seconds"] >= 0
    assert f"**published {version} ({winner['candidate']}) to {users} users**" in text
    assert "| promoted |" in text


def test_dry_run_decides_but_publishes_nothing(
    world: dict[str, str], redis_url: str, redis_client: redis.Redis
) -> None:
    data = Path(world["RECSYS_DATA_DIR"])
    baseline = publish_baseline(data, redis_url)
    production = ModelRegistry(data).production().version
    # Lenient enough that candidates pass against the production (popularity) model, so the
    # dry run has one to choose: the highest scoring.
    result, states = run_dag({**world, "GATE_TOLERANCE": "0.9"}, conf={"dry_run": True})
    assert result["state"] == "success", states
    assert states["gate"] == "success"
    for skipped in ("begin_publish", "finalize_publish", "verify"):
        assert states[skipped] == "skipped"
    assert states["report"] == "success"

    assert redis_client.get(rediskeys.ACTIVE) == baseline
    assert published(redis_client) == [baseline]
    assert ModelRegistry(data).production().version == production
    decisions = ModelRegistry(data).decisions()
    assert len(decisions) == 3  # the default candidates
    assert all(d["dry_run"] and not d["promoted"] for d in decisions)
    assert sum(d["passed"] for d in decisions) >= 2  # a choice among those that passed
    assert all(d["production_before"] == d["production_after"] == production for d in decisions)
    chosen = max(decisions, key=lambda d: d["candidate_score"])
    assert chosen["passed"]
    assert [d["candidate"] for d in decisions if d["chosen"]] == [chosen["candidate"]]
    assert "dry run: would be promoted; production not moved" in chosen["reasons"]

    report, text = read_report(data, result["run_id"])
    assert report["dry_run"] is True
    assert report["published"] is None and report["verified"] is None
    assert report["serving"]["version"] == baseline
    assert report["chosen"] == chosen["candidate"]
    assert report["outcome"] == (
        f"dry run: {chosen['candidate']} would have been promoted; nothing changed, "
        f"{baseline} ({production}) serves"
    )
    assert "| would be promoted |" in text
    assert text.startswith(f"# Retrain {result['run_id']} (dry run)")


def test_failed_training_leaves_the_published_version_serving(
    world: dict[str, str], redis_url: str, redis_client: redis.Redis
) -> None:
    data = Path(world["RECSYS_DATA_DIR"])
    baseline = publish_baseline(data, redis_url)
    # A device torch does not know: the neural model's training raises, the others succeed.
    env = {**world, "NEURAL_DEVICE": "no-such-device", "RECSYS_TASK_RETRIES": "0"}
    result, states = run_dag(env)
    assert result["state"] == "failed"
    assert sorted(states[f"train[{i}]"] for i in range(3)) == ["failed", "success", "success"]
    for task in ("gate", "begin_publish", "finalize_publish", "verify", "report"):
        assert states[task] == "upstream_failed"
    assert redis_client.get(rediskeys.ACTIVE) == baseline
    assert published(redis_client) == [baseline]
    assert not redis_client.smembers(rediskeys.PENDING)
    answers_through_service(redis_url, baseline)
    assert not (data / "reports").exists()  # no report of a failed run (see the DAG's doc)


def test_a_suspect_snapshot_is_refused_and_the_published_version_keeps_serving(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    """Five days of traffic, published; then five days in which a broken client reports
    every rating above 2 stars as 1. The drift check marks that snapshot suspect and the
    DAG refuses to train on it."""
    data = tmp_path / "data"
    lines = list(simulate_lines(users=300, movies=250, days=10, seed=3, noise=0.0))
    days = sorted({line[:10] for line in lines})
    first = [line for line in lines if line[:10] <= days[4]]
    shifted = [
        line[:-1] + b"1" if b"GET /rate/" in line and line[-1:] in b"345" else line
        for line in lines[len(first) :]
    ]
    journal, store = Journal(data, TOPIC), SnapshotStore(data)
    # Windows of 5 days of 300 users are smaller than the drift check's default minimums.
    bounds = DriftBounds(min_events=100, min_ratings=50, min_sample=20)
    for offset, chunk in ((0, first), (len(first), shifted)):
        builder = SegmentBuilder(0)
        for i, line in enumerate(chunk, offset):
            builder.add(i, parse_line(line), line)
        journal.write(builder)
        cut = store.cut(journal, bounds=bounds)
        if offset == 0:
            baseline = publish_baseline(data, redis_url)
    assert cut.suspect

    env = {**pipeline_env(data, redis_url), "RECSYS_TASK_RETRIES": "0"}
    result, states = run_dag(env)
    assert result["state"] == "failed"
    assert states["pick_snapshot"] == "success"
    assert states["validate_snapshot"] == "failed"
    assert states["report"] == "upstream_failed"
    assert [m.algorithm for m in ModelRegistry(data).list()] == ["popularity"]  # none trained
    assert redis_client.get(rediskeys.ACTIVE) == baseline
    answers_through_service(redis_url, baseline)


# --- recsys_maintenance ---------------------------------------------------------------------


def test_maintenance_prunes_old_snapshots_and_unused_versions(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    data = tmp_path / "data"
    simulated_snapshot(data, users=100, movies=60, days=3, seed=1)
    versions = [publish_baseline(data, redis_url, keep=3) for _ in range(3)]
    journal = Journal(data, TOPIC)
    builder = SegmentBuilder(0)
    for i, line in enumerate(simulate_lines(users=100, movies=60, days=1, seed=2), 10**6):
        builder.add(i, parse_line(line), line)
    journal.write(builder)
    newest = SnapshotStore(data).cut(journal).snapshot_id
    assert len(SnapshotStore(data).list()) == 2

    env = {**pipeline_env(data, redis_url), "SNAPSHOT_KEEP": "1", "KEEP_VERSIONS": "2"}
    result, states = run_dag(env, dag="recsys_maintenance")
    assert result["state"] == "success", states
    assert states == {
        "rollback": "skipped",
        "prune_versions": "success",
        "prune_snapshots": "success",
    }
    assert SnapshotStore(data).list() == [newest]
    assert published(redis_client) == versions[1:]
    assert redis_client.get(rediskeys.ACTIVE) == versions[-1]
    assert not redis_client.keys(rediskeys.version_pattern(versions[0]))


@pytest.mark.parametrize("target", ["previous", "first"])
def test_maintenance_rolls_back_on_demand(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, target: str
) -> None:
    data = tmp_path / "data"
    simulated_snapshot(data, users=100, movies=60, days=3, seed=1)
    versions = [publish_baseline(data, redis_url, keep=3) for _ in range(3)]
    back_to = versions[1] if target == "previous" else versions[0]
    conf = {"rollback": "previous" if target == "previous" else versions[0]}
    result, states = run_dag(pipeline_env(data, redis_url), dag="recsys_maintenance", conf=conf)
    assert result["state"] == "success", states
    assert states["rollback"] == "success"
    assert redis_client.get(rediskeys.ACTIVE) == back_to
    assert published(redis_client)[-1] == back_to  # what it left is unpublished
    for left in versions[versions.index(back_to) + 1 :]:
        assert not redis_client.keys(rediskeys.version_pattern(left))
    answers_through_service(redis_url, back_to)

    # A version that is not an earlier one: the run fails and nothing moves.
    env = {**pipeline_env(data, redis_url), "RECSYS_TASK_RETRIES": "0"}
    result, states = run_dag(env, dag="recsys_maintenance", conf={"rollback": "nope"})
    assert result["state"] == "failed"
    assert states["rollback"] == "failed" and states["prune_versions"] == "upstream_failed"
    assert redis_client.get(rediskeys.ACTIVE) == back_to


# --- the verify step ------------------------------------------------------------------------


@pytest.fixture
def two_versions(tmp_path: Path, redis_url: str) -> tuple[Path, list[str]]:
    data = tmp_path / "data"
    simulated_snapshot(data, users=100, movies=60, days=3, seed=1)
    return data, [publish_baseline(data, redis_url) for _ in range(2)]


@pytest.fixture
def service_url(redis_url: str) -> Iterator[str]:
    """The service app behind a real HTTP server on a loopback port."""
    app = create_app(ServiceSettings(redis_url=redis_url, request_log="off"))
    server = make_server(LOOPBACK, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOOPBACK}:{server.server_port}"
    server.shutdown()
    thread.join()


def test_verify_reads_the_live_version_through_redis_and_the_service(
    two_versions: tuple[Path, list[str]], redis_url: str, service_url: str
) -> None:
    data, (_, second) = two_versions
    settings = PrecomputeSettings(
        data_dir=data, redis_url=redis_url, verify_sample=30, service_url=service_url
    )
    verified = verify_published(second, settings)
    assert verified.as_dict() == {
        "version": second,
        "users": 30,
        "service_url": service_url,
        "service_users": 30,
    }


def test_failed_verification_rolls_back_to_the_previous_version(
    two_versions: tuple[Path, list[str]], redis_url: str, redis_client: redis.Redis
) -> None:
    data, (first, second) = two_versions
    settings = PrecomputeSettings(data_dir=data, redis_url=redis_url, verify_sample=1000)
    key = next(redis_client.scan_iter(match=rediskeys.user_pattern(second)))
    redis_client.set(key, ",".join(parse_body(redis_client.get(key))[:19]))  # one list cut short
    with pytest.raises(VerifyError, match=f"19 movie IDs .* rolled back to {first}"):
        verify_published(second, settings)
    assert redis_client.get(rediskeys.ACTIVE) == first
    assert not redis_client.keys(rediskeys.version_pattern(second))
    # Nothing to go back to: the failure is reported and the only version keeps serving.
    unreachable = PrecomputeSettings(
        data_dir=data, redis_url=redis_url, service_url=f"http://{LOOPBACK}:9"
    )
    with pytest.raises(VerifyError, match=f"unreachable.*{first} keeps serving"):
        verify_published(first, unreachable)
    assert redis_client.get(rediskeys.ACTIVE) == first


def test_finalize_is_safe_to_retry_after_the_switch(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finalize_publish task that died after switching is retried: it reports the switch
    it made instead of failing on a version that is no longer pending."""
    data = tmp_path / "data"
    simulated_snapshot(data, users=100, movies=60, days=3, seed=1)
    meta = train("popularity", settings=TrainingSettings(data_dir=data))
    monkeypatch.setenv("RECSYS_DATA_DIR", str(data))
    monkeypatch.setenv("REDIS_URL", redis_url)
    jobs = steps.begin(meta.version, shards=2).jobs()
    for job in jobs:
        steps.write_shard(**job)
    first = steps.finalize(jobs[0]["version"])
    assert redis_client.get(rediskeys.ACTIVE) == first.version
    again = steps.finalize(jobs[0]["version"])
    assert again == replace(first, removed=[])
    with pytest.raises(PublishError, match="not pending"):
        steps.finalize("000000000000000")  # anything else still has to be pending
