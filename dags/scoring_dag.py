"""Score the latest trading day with the @champion model into signals.daily_signals.

Runs on every features event (each new trading day) and on every new model; without a
champion yet it skips (the features DAG has asked for a first training, whose MODEL event
scores again)."""

from datetime import timedelta

from airflow.sdk import dag, task

from dags.assets import FEATURES, MODEL, SIGNALS
from dags.common import DEFAULT_ARGS, START_DATE, database_url
from dags.notify import failure_notifiers


@dag(
    dag_id="marketflow_scoring",
    schedule=(FEATURES | MODEL),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["marketflow", "ml", "signals"],
    default_args=DEFAULT_ARGS,
    on_failure_callback=failure_notifiers(),
    doc_md=__doc__,
)
def marketflow_scoring():
    @task(outlets=[SIGNALS], execution_timeout=timedelta(minutes=30))
    def score_latest() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.scoring import NoChampionError
        from ml.scoring import score_latest as score

        try:
            result = score(database_url())
        except NoChampionError as exc:
            raise AirflowSkipException(str(exc)) from exc
        return {
            "trade_date": str(result.trade_date),
            "rows": result.rows,
            "model_version": result.model_version,
        }

    score_latest()


dag = marketflow_scoring()

if __name__ == "__main__":
    dag.test()
