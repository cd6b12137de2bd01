"""Train the model zoo walk-forward on the marts, log it to MLflow, register the best and promote
it to @champion only if it beats the current champion on the same folds.

Runs weekly on Monday 06:00 UTC and on a RETRAIN_REQUEST: from monitoring (drift or live
decay, with a cool-down) or from the features DAG while there is no @champion yet (a fresh
stack trains once, at once). Never once per trading day: new features are scored, not trained
on. The GPU step carries the training queue and pool: on
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

    @task(
        outlets=[MODEL],
        queue=TRAINING_QUEUE,
        pool=TRAINING_POOL,
        execution_timeout=timedelta(hours=2),
    )
    def train_and_register(plan: dict) -> dict:
        from ml.config import DEFAULT_CONFIG
        from ml.train import train

        print(f"plan: {plan}")
        result = train(database_url(), config_path=TRAINING_CONFIG or DEFAULT_CONFIG)
        if result.skipped:  # no new version: skipped, so no `model` event re-scores
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(result.reason)
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

    train_and_register(check_data())


dag = marketflow_training()

if __name__ == "__main__":
    dag.test()
