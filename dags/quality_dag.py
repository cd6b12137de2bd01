"""Weekly full sweep of the data gates: every Great Expectations suite on every row.

The daily features DAG validates only the rows each run changed (expectations/scope.py),
which is what the pipeline itself can break. This sweep, Saturdays 04:00 UTC (no market
day to load), validates whole tables, so a row changed behind the pipeline's back (a
manual UPDATE, a restore) is caught within a week. Suites run one at a time: each reads a
whole table. A failure fails its task and is recorded in monitoring.validation_runs with
its Data Docs page; the daily gates are not affected. Same as `marketflow features --full`
without the dbt build: `marketflow validate SUITE --full`.
"""

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, dag, task

from dags.common import DEFAULT_ARGS, database_url, run_key
from dags.notify import failure_notifiers

SUITES = ("raw_prices", "features_daily", "labels_daily", "universe_daily")


@dag(
    dag_id="marketflow_quality_sweep",
    # Like the training DAG: no start_date and run_immediately=timedelta(0), so unpausing
    # waits for the next Saturday 04:00 instead of sweeping at once for a past tick.
    schedule=CronTriggerTimetable("0 4 * * 6", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,
    tags=["marketflow", "validation"],
    default_args=DEFAULT_ARGS,
    on_failure_callback=failure_notifiers(),
    doc_md=__doc__,
)
def marketflow_quality_sweep():
    @task(retries=0, execution_timeout=timedelta(hours=1))
    def sweep(suite: str) -> dict:
        from expectations.checkpoint import validate_or_raise

        return validate_or_raise(database_url(), suite, full=True, run_key=run_key()).as_dict()

    sweep.expand(suite=list(SUITES))


dag = marketflow_quality_sweep()

if __name__ == "__main__":
    dag.test()
