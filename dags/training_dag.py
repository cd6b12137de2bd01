"""Train the candidate models on the marts, log them to MLflow, register the best and
promote it to @champion only if it beats the current champion on the same test window."""

import os
from datetime import timedelta

from airflow.sdk import dag, task

from dags.assets import FEATURES, MODEL
from dags.common import DEFAULT_ARGS, START_DATE, database_url


@dag(
    dag_id="marketflow_training",
    schedule=[FEATURES],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["marketflow", "ml", "mlflow"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
)
def marketflow_training():
    # On Celery, set MARKETFLOW_TRAINING_QUEUE=gpu to send training to the GPU worker.
    @task(
        outlets=[MODEL],
        queue=os.environ.get("MARKETFLOW_TRAINING_QUEUE", "default"),
        execution_timeout=timedelta(hours=2),
    )
    def train_and_register() -> dict:
        from ml.train import train

        result = train(database_url())
        print(f"best={result.best_model} v{result.version} metrics={result.metrics}")
        print(f"gate: {result.reason}")
        return {
            "run_id": result.run_id,
            "version": result.version,
            "promoted": result.promoted,
            "champion_version": result.champion_version,
            "ic": result.metrics["ic"],
        }

    train_and_register()


dag = marketflow_training()

if __name__ == "__main__":
    dag.test()
