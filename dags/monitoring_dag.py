"""Daily monitoring after scoring: Evidently drift of the champion's features and published
scores, the live quality of the published signals, and a retraining request when thresholds
are crossed.

`monitor` records everything (monitoring.drift_runs, drift_features, live_quality; HTML under
the reports folder; a drift run in MLflow) and decides. `request_retraining` emits the
RETRAIN_REQUEST asset only when the decision says so: otherwise it skips itself, and a
skipped task emits no asset event. Both log why.
"""

from datetime import timedelta

from airflow.sdk import dag, task

from dags.assets import DRIFT, RETRAIN_REQUEST, SIGNALS
from dags.common import DEFAULT_ARGS, START_DATE, database_url
from dags.notify import failure_notifiers


@dag(
    dag_id="marketflow_monitoring",
    schedule=[SIGNALS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["marketflow", "monitoring", "evidently"],
    default_args=DEFAULT_ARGS,
    on_failure_callback=failure_notifiers(),
    doc_md=__doc__,
)
def marketflow_monitoring():
    @task(outlets=[DRIFT], execution_timeout=timedelta(minutes=30))
    def monitor() -> dict:
        from ml.monitoring.monitor import monitor

        return monitor(database_url()).as_xcom()

    @task(outlets=[RETRAIN_REQUEST], retries=0)
    def request_retraining(result: dict) -> dict:
        import logging
        from datetime import date

        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowSkipException

        from dags.notify import send
        from ml.monitoring.retrain import Decision, record_retrain_request

        decision = Decision(
            **{**result["decision"], "run_date": date.fromisoformat(result["decision"]["run_date"])}
        )
        logging.getLogger(__name__).info(decision.message)
        context = get_current_context()
        if not decision.retrain:
            if result.get("drift_detected"):  # drift without a retrain (cool-down): say so
                send("drift", decision.message, context)
            raise AirflowSkipException(decision.message)
        record_retrain_request(database_url(), decision)
        send("retrain_request", decision.message, context)
        return {"reasons": decision.reasons, "model_version": decision.model_version}

    request_retraining(monitor())


dag = marketflow_monitoring()

if __name__ == "__main__":
    dag.test()
