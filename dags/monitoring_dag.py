"""Evidently drift report: the champion's training window against the latest features."""

from datetime import timedelta

from airflow.sdk import dag, task

from dags.assets import DRIFT, SIGNALS
from dags.common import DEFAULT_ARGS, START_DATE, database_url


@dag(
    dag_id="marketflow_monitoring",
    schedule=[SIGNALS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["marketflow", "monitoring", "evidently"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
)
def marketflow_monitoring():
    @task(outlets=[DRIFT], execution_timeout=timedelta(minutes=30))
    def feature_drift() -> dict:
        from ml.monitoring import drift_for_champion

        result = drift_for_champion(database_url())
        return {
            "drift_detected": result.drift_detected,
            "share_drifted": result.share_drifted,
            "report_path": str(result.report_path),
        }

    feature_drift()


dag = marketflow_monitoring()

if __name__ == "__main__":
    dag.test()
