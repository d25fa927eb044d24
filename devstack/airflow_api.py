"""A small client of Airflow 3's REST API (v2), for the local stack, its test and its screenshot.

Airflow 3 authenticates every API call with a JWT: ``POST /auth/token`` with a user's name and
password (SimpleAuthManager's users here) returns it, and requests carry it as a bearer token;
the web UI reads the same token from the ``_token`` cookie. Only what the local stack needs is
here: wait for the components, find a DAG, trigger it, follow a run to its end.
"""

from __future__ import annotations

import time

import requests

FINAL_STATES = frozenset({"success", "failed"})
COMPONENTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")


class AirflowApiError(RuntimeError):
    pass


def token(url: str, username: str, password: str) -> str:
    """A JWT for this user from the auth manager's token endpoint."""
    response = requests.post(
        f"{url}/auth/token", json={"username": username, "password": password}, timeout=30
    )
    if response.status_code != 201:
        raise AirflowApiError(f"login as {username!r}: HTTP {response.status_code} {response.text}")
    return response.json()["access_token"]


def session(url: str, username: str, password: str) -> requests.Session:
    """A requests session that sends the user's JWT with every call."""
    authed = requests.Session()
    authed.headers["Authorization"] = f"Bearer {token(url, username, password)}"
    return authed


def health(url: str) -> dict[str, str]:
    """Each component's status from the unauthenticated health endpoint."""
    response = requests.get(f"{url}/api/v2/monitor/health", timeout=10)
    response.raise_for_status()
    return {name: info.get("status", "") for name, info in response.json().items()}


def wait_until_healthy(url: str, timeout: float) -> None:
    """Until the metadata DB, scheduler, DAG processor and triggerer all report healthy."""
    deadline = time.monotonic() + timeout
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            status = health(url)
        except requests.RequestException:
            status = {}
        if all(status.get(name) == "healthy" for name in COMPONENTS):
            return
        time.sleep(1)
    raise AirflowApiError(f"Airflow not healthy after {timeout:.0f}s: {status}")


def wait_for_dag(api: requests.Session, url: str, dag_id: str, timeout: float) -> dict:
    """The DAG's record, once the DAG processor has parsed and stored it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"{url}/api/v2/dags/{dag_id}", timeout=10)
        if response.status_code == 200:
            return response.json()
        time.sleep(1)
    raise AirflowApiError(f"DAG {dag_id} not parsed after {timeout:.0f}s; see import errors")


def task_ids(api: requests.Session, url: str, dag_id: str) -> list[str]:
    response = api.get(f"{url}/api/v2/dags/{dag_id}/tasks", timeout=10)
    response.raise_for_status()
    return [task["task_id"] for task in response.json()["tasks"]]


def import_errors(api: requests.Session, url: str) -> list[dict]:
    response = api.get(f"{url}/api/v2/importErrors", timeout=10)
    response.raise_for_status()
    return response.json()["import_errors"]


def set_paused(api: requests.Session, url: str, dag_id: str, paused: bool) -> dict:
    response = api.patch(f"{url}/api/v2/dags/{dag_id}", json={"is_paused": paused}, timeout=10)
    response.raise_for_status()
    return response.json()


def trigger(api: requests.Session, url: str, dag_id: str, conf: dict | None = None) -> str:
    """Queue a manual run now (no logical date, as the UI's Trigger button does); its run id."""
    response = api.post(
        f"{url}/api/v2/dags/{dag_id}/dagRuns",
        json={"logical_date": None, "conf": conf or {}},
        timeout=30,
    )
    if response.status_code != 200:
        raise AirflowApiError(f"trigger {dag_id}: HTTP {response.status_code} {response.text}")
    return response.json()["dag_run_id"]


def run_state(api: requests.Session, url: str, dag_id: str, run_id: str) -> str:
    response = api.get(f"{url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=10)
    response.raise_for_status()
    return response.json()["state"]


def wait_for_run(api: requests.Session, url: str, dag_id: str, run_id: str, timeout: float) -> str:
    """The run's final state (success or failed); raises if it has none within ``timeout``."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = run_state(api, url, dag_id, run_id)
        if state in FINAL_STATES:
            return state
        time.sleep(2)
    raise AirflowApiError(f"run {run_id} still {state!r} after {timeout:.0f}s")


def task_states(api: requests.Session, url: str, dag_id: str, run_id: str) -> dict[str, str]:
    """Each task instance's state, mapped ones as ``task[index]``: what to show when a run fails."""
    response = api.get(f"{url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", timeout=10)
    response.raise_for_status()
    states = {}
    for ti in response.json()["task_instances"]:
        name = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
        states[name] = ti["state"]
    return states
