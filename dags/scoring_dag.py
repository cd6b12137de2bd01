"""Score the latest trading day with the @champion model into signals.daily_signals."""

from datetime import timedelta

from airflow.sdk import dag, task

from dags.assets import MODEL, SIGNALS
from dags.common import DEFAULT_ARGS, START_DATE, database_url


@dag(
    dag_id="marketflow_scoring",
    schedule=[MODEL],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["marketflow", "ml", "signals"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
)
def marketflow_scoring():
    @task(outlets=[SIGNALS], execution_timeout=timedelta(minutes=30))
    def score_latest() -> dict:
        from ml.scoring import score_latest as score

        result = score(database_url())
        return {
            "trade_date": str(result.trade_date),
            "rows": result.rows,
            "model_version": result.model_version,
        }

    score_latest()


dag = marketflow_scoring()

if __name__ == "__main__":
    dag.test()
