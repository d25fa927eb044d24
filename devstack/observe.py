"""``make observe`` (``python -m devstack.demo --observe``): the demo watched by a real
Prometheus server, with the production scrape config and alert rules.

Prometheus is Debian's ``prometheus`` package (the Makefile installs it when missing). Its
configuration is ``monitoring/prometheus.yml`` as deployed, with one change: the targets. In
Kubernetes they come from DNS (the headless Services); here each job gets the loopback
address of the demo's process instead, the service (``recsys-service``) and the ingest
consumer (``recsys-ingest``), so the job names the alert rules match on stay the same. The
rules are ``monitoring/alerts.yml`` itself. Scrapes and rule evaluations run every
``INTERVAL`` instead of 15 s, so a newcomer sees numbers move at once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from devstack.servers import LOOPBACK, Server, ServerError

REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "monitoring"
SERVICE_JOB = "recsys-service"
INGEST_JOB = "recsys-ingest"
REFRESHER_JOB = "recsys-refresher"
INTERVAL = "5s"


def local_config(targets: dict[str, str], source: Path = MONITORING / "prometheus.yml") -> dict:
    """``source`` with every job's service discovery replaced by ``targets`` (job name ->
    ``host:port``) and its rule files made absolute; every job must get a target."""
    config = yaml.safe_load(source.read_text())
    config["global"] = {
        **config.get("global", {}),
        "scrape_interval": INTERVAL,
        "evaluation_interval": INTERVAL,
    }
    config["rule_files"] = [str((source.parent / f).resolve()) for f in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    if set(jobs) != set(targets):
        raise ValueError(f"{source} has jobs {sorted(jobs)}; targets given for {sorted(targets)}")
    for name, job in jobs.items():
        for key in [k for k in job if k.endswith("_sd_configs")]:
            del job[key]
        job["static_configs"] = [{"targets": [targets[name]]}]
    return config


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise ServerError("prometheus not found: apt-get install prometheus (make observe does it)")
    return found


def prometheus_server(port: int, workdir: Path, targets: dict[str, str]) -> Server:
    """A Prometheus on ``LOOPBACK:port`` scraping ``targets``, its data under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(local_config(targets), sort_keys=False))
    argv = [
        prometheus_binary(),
        f"--config.file={config}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--storage.tsdb.path={workdir / 'data'}",
        "--storage.tsdb.retention.time=1d",
    ]
    return Server("prometheus", argv, port, workdir / "prometheus.log")


def banner(url: str) -> str:
    return f"""
    Prometheus:   {url}   (monitoring/prometheus.yml's jobs, monitoring/alerts.yml's rules)
      {url}/targets   the service and the consumer, scraped every {INTERVAL}
      {url}/alerts    every alert rule and its state
      {url}/graph?g0.expr=sum(rate(recsys_service_requests_total[1m]))   requests per second
"""
