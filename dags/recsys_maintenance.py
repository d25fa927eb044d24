"""Housekeeping, daily (RECSYS_MAINTENANCE_SCHEDULE), and a rollback on demand.

rollback (only when the ``rollback`` param is set: "previous", or a kept version ID from
``python -m precompute status``; skipped otherwise) -> prune_versions (published Redis
versions beyond KEEP_VERSIONS that nothing serves); beside them prune_snapshots (all but the
newest SNAPSHOT_KEEP snapshots). A rollback moves only what the service answers from; pause
``recsys_retrain`` (or fix the cause) so its next run does not publish the same model again.

Only wiring: the work is ``precompute.steps`` and ``ingest.snapshot``. Retries and schedules:
``recsys_defaults.py``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, TriggerRule, dag, task
from recsys_defaults import DAG_ARGS, MAINTENANCE_SCHEDULE

PREVIOUS = "previous"


@dag(
    dag_id="recsys_maintenance",
    schedule=MAINTENANCE_SCHEDULE,
    **DAG_ARGS,
    params={
        "rollback": Param(
            "",
            type="string",
            description=f'empty: no rollback; "{PREVIOUS}": the version published before the '
            "active one; or a kept version ID (python -m precompute status lists them)",
        ),
    },
)
def recsys_maintenance() -> None:
    # No retry: a retried "previous" after a rollback that went through would go back twice.
    @task(execution_timeout=timedelta(minutes=5), retries=0)
    def rollback(params: dict | None = None) -> str:
        """Switch the service back; returns the version now active."""
        from airflow.sdk.exceptions import AirflowSkipException

        assert params is not None  # Airflow passes the run's params
        if not params["rollback"]:
            raise AirflowSkipException("no rollback asked")
        from precompute import steps

        return steps.rollback(None if params["rollback"] == PREVIOUS else params["rollback"])

    @task(trigger_rule=TriggerRule.NONE_FAILED, execution_timeout=timedelta(minutes=30))
    def prune_versions() -> list[str]:
        from precompute import steps

        return steps.prune()

    @task(execution_timeout=timedelta(minutes=30))
    def prune_snapshots() -> list[str]:
        from ingest.settings import Settings
        from ingest.snapshot import open_store

        settings = Settings.from_env()
        return open_store(settings.data_dir).prune(settings.snapshot_keep)

    rollback() >> prune_versions()
    prune_snapshots()


recsys_maintenance()
