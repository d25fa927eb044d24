"""Online evaluation, incrementally, hourly (ONLINE_SCHEDULE): new request-log lines and
stream events in; conversion, availability, latency and personalisation per model version
and A/B variant out (``$RECSYS_DATA_DIR/online``: report.md, metrics.json, metrics.prom, and
a Pushgateway if PUSHGATEWAY_URL is set; ``online/settings.py`` lists every variable).
Then the running A/B experiment, if any, is analysed and reported, and in bandit mode its
split in Redis is updated from the same outcomes (``experiments``).

Each run reads only what arrived since the last one and keeps its own position
(``online.evaluation``), so a missed or repeated run neither loses nor double-counts anything: no
catchup, one run at a time. Only wiring lives here; the job is imported inside the task, so
parsing this file imports nothing heavy. Retries: ``recsys_defaults.py``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task
from recsys_defaults import DAG_ARGS

from contracts.env import environment, read_var

SCHEDULE = read_var(environment(), "ONLINE_SCHEDULE", str, "@hourly")


@dag(
    dag_id="recsys_online",
    schedule=SCHEDULE,
    **DAG_ARGS,
)
def recsys_online() -> None:
    @task(execution_timeout=timedelta(minutes=50))
    def evaluate() -> dict:
        """One incremental run; returns what it read, closed and still holds pending."""
        from online.evaluation import run

        return run()

    @task(execution_timeout=timedelta(minutes=10))
    def experiment(summary: dict) -> dict:
        """The running A/B experiment, if any: a bandit step (bandit mode), then its verdict
        and report (``experiments.review.review_running``)."""
        from experiments.review import review_running
        from online.settings import Settings

        return review_running(Settings.from_env().users_path)

    # TaskFlow: evaluate's output (an XComArg) stands for its value when experiment runs.
    experiment(evaluate())  # type: ignore[arg-type]


recsys_online()
