"""The DAG under a real Airflow: ``airflow standalone`` (scheduler, LocalExecutor, SQLite, API
server) on loopback, driven only through the REST API v2, as the UI drives it. Slow (a few
minutes on 2 cores), so it runs in ``make test-e2e``, not ``make test``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from contracts import rediskeys
from contracts.response import LIST_LENGTH, parse_body
from devstack import airflow_api
from devstack.airflow import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    DAG_ID,
    QUICK_ENV,
    QUICK_WORLD,
    Stack,
    running,
)
from devstack.servers import free_port
from ingest.snapshot import SnapshotStore

RUN_TIMEOUT = 600.0  # seconds; a run takes well under a minute here, but CI machines vary

pytestmark = pytest.mark.timeout(2 * RUN_TIMEOUT)  # the stack's start counts in the first test


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("airflow-stack")
    with running(
        data_dir, free_port(), QUICK_WORLD, scheduled=False, extra_env=QUICK_ENV
    ) as started:
        yield started


@pytest.fixture(scope="module")
def api(stack: Stack) -> requests.Session:
    return airflow_api.session(stack.url, ADMIN_USER, ADMIN_PASSWORD)


def test_documented_credentials_only(stack: Stack) -> None:
    assert airflow_api.token(stack.url, ADMIN_USER, ADMIN_PASSWORD)
    with pytest.raises(airflow_api.AirflowApiError, match="401"):
        airflow_api.token(stack.url, ADMIN_USER, "not-the-password")
    anonymous = requests.get(f"{stack.url}/api/v2/dags/{DAG_ID}", timeout=10)
    assert anonymous.status_code == 401


def test_dag_parses_without_errors(stack: Stack, api: requests.Session) -> None:
    assert airflow_api.import_errors(api, stack.url) == []
    dag = airflow_api.wait_for_dag(api, stack.url, DAG_ID, timeout=60)
    assert dag["is_paused"] is False  # dags_are_paused_at_creation is off
    assert dag["fileloc"].endswith("dags/recsys_retrain.py")


def test_triggered_run_publishes(stack: Stack, api: requests.Session) -> None:
    client = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    assert client.get(rediskeys.ACTIVE) is None

    assert airflow_api.set_paused(api, stack.url, DAG_ID, paused=False)["is_paused"] is False
    run_id = airflow_api.trigger(api, stack.url, DAG_ID, conf={})
    state = airflow_api.wait_for_run(api, stack.url, DAG_ID, run_id, RUN_TIMEOUT)
    tasks = airflow_api.task_states(api, stack.url, DAG_ID, run_id)
    assert state == "success", f"run {run_id} {state}: {tasks} (logs: {stack.env['AIRFLOW_HOME']})"
    assert not {"failed", "upstream_failed"} & set(tasks.values()), tasks

    version = client.get(rediskeys.ACTIVE)
    assert version, f"the run succeeded but published nothing: {tasks}"
    assert client.zscore(rediskeys.VERSIONS, version) is not None
    meta = client.hgetall(rediskeys.meta(version))
    assert meta["shards"] == QUICK_ENV["PRECOMPUTE_SHARDS"]
    snapshot = SnapshotStore(Path(stack.env["RECSYS_DATA_DIR"])).load()
    users = sorted(set(snapshot.ratings["user_id"]) | set(snapshot.watches["user_id"]))
    assert int(meta["users"]) == len(users)
    bodies = client.mget([rediskeys.user(version, int(user)) for user in users])
    for user, body in zip(users, bodies, strict=True):
        movies = parse_body(body or "")
        assert len(movies) == len(set(movies)) == LIST_LENGTH, f"user {user}: {body!r}"
    default = parse_body(client.get(rediskeys.default(version)))
    assert len(default) == len(set(default)) == LIST_LENGTH
