"""The deployment artifacts agree with the code: metric names and routes the alerts and the
dashboard query, settings the manifests set, the probes, ports and security the issue asks
for. Pure Python (no promtool, kubectl or buildah): those run in `make rules-test`,
`make k8s-check` and `make image-test`."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

from contracts.locations import RedisTopology
from ingest import prom as ingest_prom
from refresher import prom as refresher_prom
from service import prom as service_prom
from service.app import create_app

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
MONITORING = ROOT / "monitoring"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def base_resources() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    found = {}
    for rel in kustomization["resources"]:
        for doc in load_all(K8S / "base" / rel):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def exposed_names() -> set[str]:
    """Every sample name the service and the consumer expose."""
    names: set[str] = set()
    collectors = [
        v
        for module in (service_prom, ingest_prom, refresher_prom)
        for v in vars(module).values()
        if isinstance(v, MetricWrapperBase)
    ]
    for c in collectors:
        base = c._name  # prometheus_client keeps the bare name only here
        if isinstance(c, Counter):
            names |= {f"{base}_total", f"{base}_created"}
        elif isinstance(c, Histogram):
            names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
        else:
            names.add(base)
    return names


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    data = json.loads((MONITORING / "grafana" / "recsys.json").read_text())
    return [t["expr"] for p in data["panels"] for t in p.get("targets", []) if t.get("expr")]


def queried_metrics(expr: str) -> set[str]:
    return set(re.findall(r"(?<![\w:])((?:recsys_service|ingest|refresher)_[a-z0-9_]+)", expr))


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_queried_metric_is_exposed(source: str) -> None:
    exprs = [r["expr"] for r in alert_rules()] if source == "alerts" else dashboard_exprs()
    used = set().union(*map(queried_metrics, exprs))
    assert used, "no metric found: the regex or the files changed"
    assert used - exposed_names() == set(), f"{source} query metrics nobody exposes"


def test_route_label_in_queries_is_the_apps_rule() -> None:
    rules = {r.rule for r in create_app().url_map.iter_rules()}
    for expr in [r["expr"] for r in alert_rules()] + dashboard_exprs():
        for route in re.findall(r'route="([^"]+)"', expr):
            assert route in rules, f"{route!r} is not a route of the app: {sorted(rules)}"


def test_every_alert_has_a_unit_test_and_a_runbook_section() -> None:
    tests = (MONITORING / "tests" / "alerts_test.yml").read_text()
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", runbook, re.M)
    }
    alerts = [r for r in alert_rules() if "alert" in r]
    assert len(alerts) >= 7
    for rule in alerts:
        name = rule["alert"]
        assert f"alertname: {name}" in tests, f"{name} has no promtool test"
        anchor = rule["annotations"]["runbook_url"].partition("#")[2]
        assert anchor in headings, f"{name}: docs/runbook.md has no section #{anchor}"


def test_service_deployment_is_what_the_issue_asks_for() -> None:
    res = base_resources()
    dep = res[("Deployment", "recsys-service")]
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= container["resources"].keys()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert res[("HorizontalPodAutoscaler", "recsys-service")]["spec"]["minReplicas"] >= 2
    assert ("PodDisruptionBudget", "recsys-service") in res
    assert ("NetworkPolicy", "recsys-service") in res
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "recsys-redis"
    assert "$(REDIS_PASSWORD)" in env["REDIS_URL"]["value"]
    # The port the probes, the Service and Prometheus use is the one gunicorn binds.
    config = res[("ConfigMap", "recsys-service")]["data"]
    port = int(config["SERVICE_BIND"].rpartition(":")[2])
    assert container["ports"][0]["containerPort"] == port
    prom = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["recsys-service"]["dns_sd_configs"][0]["port"] == port


@pytest.mark.parametrize(
    ("configmap", "settings_module"),
    [
        ("recsys-service", "service/settings.py"),
        ("recsys-ingest", "ingest/settings.py"),
        ("recsys-refresher", "refresher/settings.py"),
    ],
)
def test_configmap_keys_are_documented_settings(configmap: str, settings_module: str) -> None:
    text = (ROOT / settings_module).read_text()
    for key in base_resources()[("ConfigMap", configmap)]["data"]:
        assert re.search(rf"\b{key}\b", text), f"{key} is not a setting of {settings_module}"


def test_refresher_deployment() -> None:
    res = base_resources()
    dep = res[("Deployment", "recsys-refresher")]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "refresher", "run"]
    port = int(res[("ConfigMap", "recsys-refresher")]["data"]["REFRESH_METRICS_PORT"])
    assert container["ports"][0]["containerPort"] == port
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probe in container
    env = {e["name"]: e for e in container["env"]}
    assert "$(REDIS_PASSWORD)" in env["REDIS_URL"]["value"]
    assert dep["spec"]["template"]["metadata"]["labels"]["recsys.io/redis-client"] == "true"
    assert ("NetworkPolicy", "recsys-refresher") in res


def test_ingest_consumer_deployment() -> None:
    res = base_resources()
    dep = res[("Deployment", "recsys-ingest")]
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "ingest", "consume"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    port = int(res[("ConfigMap", "recsys-ingest")]["data"]["INGEST_METRICS_PORT"])
    assert container["ports"][0]["containerPort"] == port
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert res[("ConfigMap", "recsys-ingest")]["data"]["RECSYS_DATA_DIR"] in mounts


def test_redis_has_auth_and_persistence() -> None:
    sts = base_resources()[("StatefulSet", "recsys-redis")]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert "--requirepass" in container["args"]
    assert sts["spec"]["volumeClaimTemplates"]
    assert "appendonly yes" in base_resources()[("ConfigMap", "recsys-redis")]["data"]["redis.conf"]


def test_no_secret_values_in_base_or_prod() -> None:
    for path in [*(K8S / "base").rglob("*.yaml"), *(K8S / "overlays" / "prod").rglob("*.yaml")]:
        for doc in load_all(path):
            assert doc.get("kind") != "Secret", f"{path} carries a Secret"
            assert "secretGenerator" not in doc, f"{path} generates a Secret"


def test_every_redis_client_reads_one_topology_configmap() -> None:
    """The service, the refresher and Airflow's task pods (which publish) take REDIS_MODE and
    its nodes from one ConfigMap holding only RedisTopology's variables, so an overlay that
    changes it cannot leave one of them on another topology; prod-redis-cluster does that."""
    res = base_resources()
    topology = res[("ConfigMap", "recsys-redis-topology")]["data"]
    assert set(topology) <= set(RedisTopology.variables())
    RedisTopology.from_env(topology)  # valid as it stands
    for name in ("recsys-service", "recsys-refresher"):
        (container,) = res[("Deployment", name)]["spec"]["template"]["spec"]["containers"]
        sources = [s["configMapRef"]["name"] for s in container["envFrom"]]
        assert "recsys-redis-topology" in sources, name
        own = {e["name"] for e in container.get("env", [])} | {
            key
            for source in sources
            if source != "recsys-redis-topology"
            for key in res[("ConfigMap", source)]["data"]
        }
        assert own & set(RedisTopology.variables()) == set(), f"{name} sets its own topology"
    values = yaml.safe_load((K8S / "airflow" / "values.yaml").read_text())
    extra = yaml.safe_load(values["extraEnvFrom"])
    assert {"configMapRef": {"name": "recsys-redis-topology"}} in extra
    assert {e["name"] for e in values["env"]} & set(RedisTopology.variables()) == set()
    overlay = yaml.safe_load(
        (K8S / "overlays" / "prod-redis-cluster" / "kustomization.yaml").read_text()
    )
    patched = [
        yaml.safe_load(p["patch"])
        for p in overlay["patches"]
        if "recsys-redis-topology" in p["patch"]
    ]
    (cluster,) = [p["data"] for p in patched]
    assert RedisTopology.from_env(cluster).mode == "cluster"
    assert len(RedisTopology.from_env(cluster).cluster_startup_nodes()) == 6
    assert "configMapGenerator" not in overlay  # the service's own ConfigMap keeps no topology


def test_airflow_values() -> None:
    values = yaml.safe_load((K8S / "airflow" / "values.yaml").read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert values["images"]["airflow"]["repository"].endswith("/recsys-pipeline")
    assert values["config"]["core"]["dags_folder"] == "/app/dags"
    assert values["labels"]["recsys.io/redis-client"] == "true"


def test_dockerfile_stages() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM \S+ AS (\S+)\n(.*?)(?=^FROM |\Z)", text, re.M | re.S))
    assert {"service", "pipeline"} <= stages.keys()
    for name in ("service", "pipeline"):
        assert re.search(r"^USER 10001", stages[name], re.M), f"{name} runs as root"
    service = stages["service"] + stages["service-deps"]
    assert "requirements-pipeline" not in service
    assert "HEALTHCHECK" in stages["service"]
    requirements = (ROOT / "requirements.txt").read_text().lower()
    for heavy in ("apache-airflow", "torch", "pandas", "numpy"):
        assert not re.search(rf"^{heavy}\b", requirements, re.M), f"{heavy} in the service set"


def _copied(stage: str) -> set[str]:
    return set(re.findall(r"^COPY (\w+)/ \1/$", stage, re.M))


def test_images_copy_exactly_the_packages_their_processes_import() -> None:
    """The service image: the service and what it imports (contracts, redisconn); the
    pipeline image: every package a DAG task or a Deployment running the pipeline image
    (``python -m <package>``) imports (and what those import), nothing else of ours."""
    text = (ROOT / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM \S+ AS (\S+)\n(.*?)(?=^FROM |\Z)", text, re.M | re.S))
    assert _copied(stages["service"]) == {"contracts", "redisconn", "service"}
    ours = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    processes = {
        dep["spec"]["template"]["spec"]["containers"][0]["command"][2].split(".")[0]
        for (kind, _), dep in base_resources().items()
        if kind == "Deployment"
        and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "recsys-pipeline"
    }
    assert {"ingest", "refresher"} <= processes
    needed, todo = {"dags", *processes}, [ROOT / "dags", *(ROOT / p for p in processes)]
    while todo:
        for path in todo.pop().rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                for top in {n.split(".")[0] for n in names} & ours - needed:
                    needed.add(top)
                    todo.append(ROOT / top)
    assert _copied(stages["pipeline"]) == needed
    ignored = (ROOT / ".dockerignore").read_text()
    assert all(f"!{package}/" in ignored for package in needed | {"service"})
