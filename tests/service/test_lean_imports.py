"""The service's image stays lean: its modules import only the pinned set of packages,
requirements.txt pins exactly that set, and importing the service pulls in no pipeline
package."""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


# What the image holds of ours: the service, and redisconn (how every role opens Redis).
SERVICE_MODULES = sorted(
    f"{p.parent.name}/{p.stem}"
    for package in ("service", "redisconn")
    for p in (ROOT / package).glob("*.py")
)


# The image: flask (werkzeug is its part), gunicorn, redis (+hiredis), prometheus_client,
# swagger_ui_bundle (the /docs page's assets), and kafka-python, which only kafkasink imports,
# lazily. contracts is the standard-library package the service shares with the pipeline,
# redisconn the redis-py one.
LEAN = {
    "flask",
    "werkzeug",
    "gunicorn",
    "redis",
    "prometheus_client",
    "swagger_ui_bundle",
    "service",
    "contracts",
    "redisconn",
    "__future__",
}


@pytest.mark.parametrize("module", SERVICE_MODULES)
def test_service_modules_import_only_the_lean_set(module: str) -> None:
    tree = ast.parse((ROOT / f"{module}.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            imported.add(node.module.split(".")[0])
    assert imported or module.endswith("__init__")  # the walk found the imports at all
    allowed = LEAN | ({"kafka"} if module == "service/kafkasink" else set())
    assert imported - allowed - set(sys.stdlib_module_names) == set()


def test_requirements_pin_exactly_the_lean_set() -> None:
    pins = [
        line.split("==")[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert sorted(pins) == sorted(
        [
            "flask",
            "gunicorn",
            "redis",
            "hiredis",
            "prometheus-client",
            "kafka-python",
            "swagger-ui-bundle",
        ]
    )


def test_importing_the_service_pulls_in_no_pipeline_package(
    run_module: Callable[..., Any],
) -> None:
    """And precompute can import ``contracts.rediskeys`` without Flask or redis."""
    modules = ", ".join(
        m.replace("/", ".").removesuffix(".__init__")
        for m in SERVICE_MODULES
        if m != "service/gunicorn.conf"
    )
    code = f"""
import json, sys
import contracts.ab, contracts.env, contracts.locations, contracts.rediskeys
import contracts.requestrecord, contracts.response, contracts.userid
light = sorted(m for m in sys.modules if m.split('.')[0] in {{'flask', 'redis', 'werkzeug'}})
import {modules}
print(json.dumps({{'light': light, 'top': sorted({{m.split('.')[0] for m in sys.modules}})}}))
"""
    out = run_module(["-c", code], check=True)
    found = json.loads(out.stdout)
    assert found["light"] == []
    heavy = {"numpy", "pandas", "airflow", "torch", "surprise", "kafka", "sqlalchemy", "scipy"}
    assert heavy & set(found["top"]) == set()
