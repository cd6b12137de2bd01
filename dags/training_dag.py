"""Train the model zoo walk-forward on the marts, log it to MLflow, register the best and promote
it to @champion only if it beats the current champion on the same folds.

Runs weekly on Monday 06:00 UTC and on a RETRAIN_REQUEST: from monitoring (drift or live
decay, with a cool-down) or from the features DAG while there is no @champion yet (a fresh
stack trains once, at once). Never once per trading day: new features are scored, not trained
on. The candidates fan out: one mapped task each (`walk_forward_cpu`, `walk_forward_gpu` for
the models that want a GPU), all nested runs of one parent MLflow run, then `register_and_gate`
gathers them and runs the gate on their identical folds. The GPU steps carry the training queue
and pool: on
Celery set MARKETFLOW_TRAINING_QUEUE=gpu and MARKETFLOW_TRAINING_POOL=gpu (created by
`marketflow up`, or `airflow pools set gpu 1 "GPU training"`); LocalExecutor ignores queues.
"""

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from core.settings import get_settings
from dags.assets import MODEL, RETRAIN_REQUEST
from dags.common import DEFAULT_ARGS, database_url
from dags.notify import failure_notifiers

TRAINING = get_settings().training
TRAINING_QUEUE = TRAINING.queue
TRAINING_POOL = TRAINING.pool
# A config file other than ml/config/models.yaml (e.g. ml/config/full.yaml on a GPU worker).
TRAINING_CONFIG = TRAINING.config


@dag(
    dag_id="marketflow_training",
    schedule=AssetOrTimeSchedule(
        # run_immediately=timedelta(0), not False: Airflow 3.3 treats False like None, which
        # runs the past tick when it is less than a tenth of the period old (16.8 h here), so
        # unpausing on a Monday afternoon trained at once for that morning's 06:00.
        timetable=CronTriggerTimetable("0 6 * * 1", timezone="UTC", run_immediately=timedelta(0)),
        assets=RETRAIN_REQUEST,
    ),
    # No start_date: with one, a catchup=False cron timetable runs for the last Monday the
    # moment the DAG is unpaused (before any features exist); without one, it waits for the
    # next Monday 06:00. Retrain requests still start it at once.
    catchup=False,
    max_active_runs=1,
    tags=["marketflow", "ml", "mlflow"],
    default_args=DEFAULT_ARGS,
    on_failure_callback=failure_notifiers(),
    doc_md=__doc__,
)
def marketflow_training():
    @task(execution_timeout=timedelta(minutes=20))
    def check_data() -> dict:
        """Folds and the leakage guard, on CPU, before any GPU time is spent."""
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.config import DEFAULT_CONFIG, load_config
        from ml.data.handler import has_labelled_features
        from ml.prepare import prepare
        from ml.train import guard_leakage

        if not has_labelled_features(database_url()):
            raise AirflowSkipException("no features built yet: nothing to train on")
        config = load_config(TRAINING_CONFIG or DEFAULT_CONFIG)
        prepared = prepare(database_url(), config)
        folds = prepared.folds
        panel = prepared.panel
        guard_leakage(prepared)
        return {
            "features": len(panel.features),
            "folds": len(folds),
            "test_start": str(folds[0].test_start),
            "test_end": str(folds[-1].test_end),
        }

    @task(execution_timeout=timedelta(minutes=30))
    def begin(plan: dict) -> dict:
        """The training's parent MLflow run, unless a version has these very inputs (then
        skipped: nothing downstream runs, no `model` event re-scores); the candidates split
        by where they train best."""
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.models import model_class
        from ml.train import TrainResult, begin_training

        settings, prepared = _prepared()
        begun = begin_training(prepared, settings)
        if isinstance(begun, TrainResult):
            raise AirflowSkipException(begun.reason)
        print(f"plan: {plan}; parent run {begun.run_id}")
        models = prepared.config.models
        return {
            **begun.as_dict(),
            "cpu": [n for n in begun.models if not model_class(models[n]).wants_gpu],
            "gpu": [n for n in begun.models if model_class(models[n]).wants_gpu],
        }

    @task(execution_timeout=timedelta(hours=2))
    def walk_forward(name: str, begun: dict) -> str:
        """One candidate's walk-forward on the training's folds (a nested run of its own)."""
        from ml.train import walk_forward_one

        settings, prepared = _prepared()
        folder = walk_forward_one(prepared, _begun(begun), name, _results(begun), settings)
        return str(folder)

    @task(
        outlets=[MODEL],
        queue=TRAINING_QUEUE,
        pool=TRAINING_POOL,
        execution_timeout=timedelta(hours=2),
        # One group may be empty (a zoo without GPU models): skipped, not failed.
        trigger_rule="none_failed_min_one_success",
    )
    def register_and_gate(begun: dict) -> dict:
        """Every candidate's walk-forward gathered: the best refitted, registered, gated."""
        from ml.train import finish_training

        settings, prepared = _prepared()
        result = finish_training(prepared, _begun(begun), _results(begun), database_url(),
                                 settings)  # fmt: skip
        print(f"best={result.best_model} v{result.version} metrics={result.metrics}")
        print(f"gate: {result.reason}")
        return {
            "run_id": result.run_id,
            "version": result.version,
            "best_model": result.best_model,
            "promoted": result.promoted,
            "champion_version": result.champion_version,
            "rank_ic": result.metrics["rank_ic"],
        }

    @task
    def models(begun: dict, group: str) -> list[str]:
        """The candidates of one group (Airflow maps over a task's whole result only)."""
        return list(begun[group])

    begun = begin(check_data())
    cpu_models = models.override(task_id="cpu_models")(begun, "cpu")
    gpu_models = models.override(task_id="gpu_models")(begun, "gpu")
    on_cpu = walk_forward.override(task_id="walk_forward_cpu").partial(begun=begun)
    # The GPU step carries the training queue and pool (`gpu` on Celery).
    on_gpu = walk_forward.override(
        task_id="walk_forward_gpu", queue=TRAINING_QUEUE, pool=TRAINING_POOL
    ).partial(begun=begun)
    [on_cpu.expand(name=cpu_models), on_gpu.expand(name=gpu_models)] >> register_and_gate(begun)


def _prepared():
    """(settings, the training data and folds), as every task of a training reads them."""
    from ml.config import DEFAULT_CONFIG, load_config
    from ml.prepare import prepare

    settings = get_settings()
    config = load_config(TRAINING_CONFIG or DEFAULT_CONFIG)
    return settings, prepare(database_url(), config, settings)


def _begun(fields: dict):
    from ml.train import Begun

    return Begun(fields["run_id"], fields["inputs"], fields["fingerprint"], list(fields["models"]))


def _results(begun: dict):
    """Where a training's candidates leave their walk-forwards for the gather task."""
    from pathlib import Path

    return Path(get_settings().data_dir) / "training" / begun["run_id"]


dag = marketflow_training()

if __name__ == "__main__":
    dag.test()
