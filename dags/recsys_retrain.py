"""Retrain and republish, daily (RECSYS_RETRAIN_SCHEDULE) or by hand with params.

pick_snapshot (the one named, else a fresh cut of the journal) -> validate_snapshot (refuse a
suspect or thin one) -> train, one mapped task per model in ``models`` (by default the three
that lead the leaderboard, side by side: the neural model, the top-N SVD and EASE) ->
evaluate, mapped likewise, each against popularity and the production model on the same
split -> gate: the best candidate that passes is promoted, or none -> begin_publish ->
precompute_shard, one mapped task per user shard (PRECOMPUTE_SHARDS) -> finalize_publish
(verify every shard, atomic switch) -> verify (sampled lookups through Redis and, with
SERVICE_URL, through the service; a failure rolls back) -> report
(``$RECSYS_DATA_DIR/reports/<run_id>.md``/``.json``, also in its task log).

A failure anywhere leaves the previously published version serving: nothing is switched
before finalize_publish has verified the whole new version, and verify rolls a bad one back.
When the gate promotes no candidate, or in a ``dry_run``, publishing is skipped and the run
still succeeds; the report says what was (or would have been) decided and why; every
decision is also in the registry's log (``python -m training decisions``). The report runs
when nothing upstream failed (``none_failed_min_one_success``), so it also runs after a
skipped publish; after a failure it does not run and the run fails (``all_done`` would make
it the successful last task of a failed run).

Only wiring lives here; every step is a library function (``ingest``, ``training``,
``precompute``) imported inside its task, so parsing this file imports nothing heavy.
Retries and schedules: ``recsys_defaults.py``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, TriggerRule, dag, task
from recsys_defaults import DAG_ARGS, RETRAIN_SCHEDULE

# training.train.ALGORITHMS' keys (a test keeps them in step; importing it here would make
# parsing the DAG import pandas and scipy).
ALGORITHM_CHOICES = ["multdae", "ease", "puresvd", "ials", "svd", "popularity", "random"]
# The served-quality candidates (docs/MODELS.md): the gate promotes the best that passes.
DEFAULT_MODELS = ["multdae", "puresvd", "ease"]


@dag(
    dag_id="recsys_retrain",
    schedule=RETRAIN_SCHEDULE,
    **DAG_ARGS,
    params={
        "snapshot_id": Param("", type="string", description="snapshot to train on; empty: latest"),
        "allow_suspect": Param(
            False,
            type="boolean",
            description="train even on a snapshot the drift check marked suspect "
            "(read `python -m ingest drift` first)",
        ),
        "models": Param(
            DEFAULT_MODELS,
            type="array",
            items={"type": "string", "enum": ALGORITHM_CHOICES},
            minItems=1,
            uniqueItems=True,
            description="models to train side by side; the gate promotes the best that passes",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            description="train, evaluate and decide, but publish nothing and move no "
            "production pointer; the report says what would have happened",
        ),
    },
)
def recsys_retrain() -> None:
    @task(execution_timeout=timedelta(minutes=30))
    def pick_snapshot(params: dict | None = None) -> str:
        from ingest.settings import Settings
        from ingest.snapshot import pick_snapshot

        assert params is not None  # Airflow passes the run's params
        settings = Settings.from_env()
        return pick_snapshot(
            params["snapshot_id"] or None,
            root=settings.data_dir,
            topic=settings.topic,
            location=settings.snapshots,
            bounds=settings.drift,
            scale_high=settings.scale.high,
        )

    @task(execution_timeout=timedelta(minutes=10))
    def validate_snapshot(snapshot_id: str, params: dict | None = None) -> list[dict]:
        """Refuse a suspect or thin snapshot; else one training job per requested model."""
        from ingest.settings import Settings
        from ingest.snapshot import open_store, validate_snapshot

        assert params is not None  # Airflow passes the run's params
        settings = Settings.from_env()
        store = open_store(settings.data_dir)
        validate_snapshot(store, snapshot_id, allow_suspect=params["allow_suspect"])
        return [{"algorithm": name, "snapshot_id": snapshot_id} for name in params["models"]]

    @task(
        execution_timeout=timedelta(hours=2),
        map_index_template="{{ task.op_kwargs['algorithm'] }}",
    )
    def train(algorithm: str, snapshot_id: str) -> str:
        from training.train import train

        return train(algorithm, snapshot_id).version

    @task(
        execution_timeout=timedelta(hours=2),
        map_index_template="{{ task.op_kwargs['model_version'] }}",
    )
    def evaluate(model_version: str) -> str:
        from training.gate import evaluate_candidate

        return evaluate_candidate(model_version).version

    # Refused (or a dry run): only begin_publish is skipped by this task; what follows it
    # skips by its own trigger rule, and the report still runs.
    @task.short_circuit(
        execution_timeout=timedelta(minutes=30), ignore_downstream_trigger_rules=False
    )
    def gate(candidates: list[str], params: dict | None = None) -> str:
        """The promoted version; '' (falsy: publishing is skipped) if none."""
        from training.gate import gate_best

        assert params is not None  # Airflow passes the run's params
        decisions = gate_best(list(candidates), dry_run=params["dry_run"])
        return next((d.candidate for d in decisions if d.promoted), "")

    # The publish's three steps (precompute.steps: begin, write_shard, finalize); the task
    # IDs are what operators know from the Airflow UI and the runbook.
    @task(execution_timeout=timedelta(hours=1))
    def begin_publish(model_version: str) -> list[dict]:
        """A pending version in Redis for the promoted model: one job per user shard."""
        from precompute import steps

        return steps.begin(model_version).jobs()

    @task(
        execution_timeout=timedelta(hours=2),
        max_active_tis_per_dag=4,
        map_index_template="{{ task.op_kwargs['shard'] }}",
    )
    def precompute_shard(version: str, shard: str) -> dict:
        from precompute import steps

        return {"shard": shard, "users": steps.write_shard(version, shard).users}

    @task(execution_timeout=timedelta(minutes=30))
    def finalize_publish(jobs: list[dict]) -> dict:
        """Verify every shard, then switch the service to the new version atomically (a retry
        after the switch reports it)."""
        from precompute import steps

        done = steps.finalize(jobs[0]["version"])
        return {
            "version": done.version,
            "users": done.users,
            "removed_versions": done.removed,
            "bytes_per_user": done.bytes_per_user,
        }

    @task(execution_timeout=timedelta(minutes=10))
    def verify(published: dict) -> dict:
        """Sampled lookups of the live version; a failure rolls back to the previous one."""
        from precompute.verify import verify_published

        return verify_published(published["version"]).as_dict()

    @task(
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        execution_timeout=timedelta(minutes=10),
    )
    def report(
        snapshot_id: str,
        candidates: list[str],
        published: dict | None,
        verified: dict | None,
        *,
        params: dict | None = None,
        ti=None,
        dag=None,
        dag_run=None,
    ) -> dict:
        from precompute.retrain_report import write_run_report

        assert params is not None  # Airflow passes the run's params
        return write_run_report(
            run_id=dag_run.run_id,
            dry_run=params["dry_run"],
            snapshot_id=snapshot_id,
            candidates=list(candidates),
            published=published,
            verified=verified,
            tasks=list(ti.get_task_breadcrumbs(dag_run.dag_id, dag_run.run_id)),
            task_order=list(dag.task_ids),
        )

    # TaskFlow: a task's output (an XComArg) passed to another task stands for its value when
    # that one runs; the decorator's types take the value, hence the arg-type ignores.
    snapshot = pick_snapshot()
    candidates = evaluate.expand(
        model_version=train.expand_kwargs(validate_snapshot(snapshot))  # type: ignore[arg-type]
    )
    jobs = begin_publish(gate(candidates))  # type: ignore[arg-type]
    published = finalize_publish(jobs)  # type: ignore[arg-type]
    precompute_shard.expand_kwargs(jobs) >> published
    report(snapshot, candidates, published, verify(published))  # type: ignore[arg-type]


recsys_retrain()
