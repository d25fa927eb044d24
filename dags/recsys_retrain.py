"""Retrain and republish: pick a snapshot -> train -> evaluate -> gate -> begin a version ->
precompute every user shard (dynamic task mapping, PRECOMPUTE_SHARDS) -> finalize (verify,
atomic switch).

The gate (``training.gate``) lets a candidate through only if the offline evaluation says it
is at least as good as the production model and clearly better than popularity; a refused
candidate skips publishing (the task is skipped, the run still succeeds) and production
keeps serving what it served. The decision and its reasons are in the registry's log
(``python -m training decisions``).

Only wiring lives here; every step is a library function (``ingest``, ``training``,
``precompute``) imported inside its task, so parsing this file imports nothing heavy.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

# Each task is retried (RECSYS_TASK_RETRIES, default 2) after RECSYS_RETRY_DELAY_SECONDS (120).
DEFAULT_ARGS = {
    "retries": int(os.environ.get("RECSYS_TASK_RETRIES", "2")),
    "retry_delay": timedelta(seconds=int(os.environ.get("RECSYS_RETRY_DELAY_SECONDS", "120"))),
}
# training.train.ALGORITHMS' keys (a test keeps them in step; importing it here would make
# parsing the DAG import pandas and scipy).
ALGORITHM_CHOICES = ["multdae", "svd", "popularity", "random"]


@dag(
    dag_id="recsys_retrain",
    schedule=os.environ.get("RECSYS_RETRAIN_SCHEDULE", "@daily"),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recsys"],
    params={
        "snapshot_id": Param("", type="string", description="snapshot to train on; empty: latest"),
        "allow_suspect": Param(
            False,
            type="boolean",
            description="train even on a snapshot the drift check marked suspect "
            "(read `python -m ingest drift` first)",
        ),
        "algorithm": Param(
            ALGORITHM_CHOICES[0], enum=ALGORITHM_CHOICES, description="model to train"
        ),
    },
)
def recsys_retrain() -> None:
    @task(execution_timeout=timedelta(minutes=30))
    def pick_snapshot(params: dict | None = None) -> str:
        from ingest.settings import Settings
        from ingest.snapshot import pick_snapshot

        settings = Settings.from_env()
        return pick_snapshot(
            params["snapshot_id"] or None,
            root=settings.data_dir,
            topic=settings.topic,
            location=settings.snapshots,
            allow_suspect=params["allow_suspect"],
            bounds=settings.drift,
            scale_high=settings.scale.high,
        )

    @task(execution_timeout=timedelta(hours=2))
    def train(snapshot_id: str, params: dict | None = None) -> str:
        from training.train import train

        return train(params["algorithm"], snapshot_id).version

    @task(execution_timeout=timedelta(hours=2))
    def evaluate(model_version: str) -> str:
        from training.gate import evaluate_candidate

        return evaluate_candidate(model_version).version

    @task.short_circuit(execution_timeout=timedelta(minutes=10))
    def gate(model_version: str) -> str:
        """The version if promoted; '' (falsy: publishing is skipped) if refused."""
        from training.gate import gate

        decision = gate(model_version)
        return model_version if decision.promoted else ""

    @task(execution_timeout=timedelta(hours=1))
    def begin_publish(model_version: str) -> list[dict]:
        """A pending version in Redis for the promoted model: one job per user shard."""
        from precompute.job import begin_publish

        return begin_publish(model_version)

    @task(execution_timeout=timedelta(hours=2), max_active_tis_per_dag=4)
    def precompute_shard(version: str, shard: str) -> dict:
        from precompute.job import publish_shard

        return publish_shard(version, shard)

    @task(execution_timeout=timedelta(minutes=30))
    def finalize_publish(jobs: list[dict]) -> dict:
        """Verify every shard, then switch the service to the new version atomically."""
        from precompute.job import finalize_publish

        return finalize_publish(jobs[0]["version"])

    jobs = begin_publish(gate(evaluate(train(pick_snapshot()))))
    precompute_shard.expand_kwargs(jobs) >> finalize_publish(jobs)


recsys_retrain()
