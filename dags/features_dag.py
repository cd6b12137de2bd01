"""raw.prices -> Great Expectations on raw -> dbt (one Cosmos task per model, seed and test)
-> Great Expectations on labels_daily and universe_daily, and the dbt docs (the analysts'
feature catalogue) -> Great Expectations on features_daily -> FEATURES asset.

A failed checkpoint fails its task; every task after it is upstream_failed and FEATURES is
not emitted, so nothing downstream reads bad data. Each checkpoint writes its Data Docs HTML
to $MARKETFLOW_DATA_DIR/reports/data_docs/<suite>/index.html."""

import sys
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior

from core.dbt import dbt_env, target_path
from dags.assets import FEATURES, RAW_PRICES, RETRAIN_REQUEST
from dags.common import DEFAULT_ARGS, START_DATE, database_url, run_key
from dags.notify import failure_notifiers

DBT_DIR = Path(__file__).resolve().parent.parent / "dbt"
MANIFEST = target_path() / "manifest.json"


@dag(
    dag_id="marketflow_features",
    schedule=[RAW_PRICES],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["marketflow", "dbt", "validation"],
    default_args=DEFAULT_ARGS,
    on_failure_callback=failure_notifiers(),
    doc_md=__doc__,
)
def marketflow_features():
    @task(retries=0)
    def validate_raw_prices() -> dict:
        from expectations.checkpoint import validate_or_raise

        return validate_or_raise(database_url(), "raw_prices", run_key=run_key()).as_dict()

    dbt_models = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=DBT_DIR,
            manifest_path=MANIFEST if MANIFEST.exists() else None,
            env_vars=dbt_env(database_url()),
        ),
        profile_config=ProfileConfig(
            profile_name="marketflow",
            target_name="dev",
            profiles_yml_filepath=DBT_DIR / "profiles.yml",
        ),
        execution_config=ExecutionConfig(
            dbt_executable_path=str(Path(sys.executable).parent / "dbt"),
            invocation_mode=InvocationMode.DBT_RUNNER,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.AUTOMATIC,
            test_behavior=TestBehavior.AFTER_EACH,
            # A test of two models (features and labels share keys) gets a task of its own
            # after both; attached to one parent it raced the other's build on a cold run.
            should_detach_multiple_parents_tests=True,
            # Our Assets say what changed (features_daily after its checkpoint); Cosmos's own
            # per-model Assets (postgres:// URIs nothing schedules on) would only add noise.
            emit_datasets=False,
        ),
        operator_args={"install_deps": False, "retries": 1},
    )

    @task(retries=0)
    def validate_labels() -> dict:
        from expectations.checkpoint import validate_or_raise

        return validate_or_raise(database_url(), "labels_daily", run_key=run_key()).as_dict()

    @task(retries=0)
    def validate_universe() -> dict:
        from expectations.checkpoint import validate_or_raise

        return validate_or_raise(database_url(), "universe_daily", run_key=run_key()).as_dict()

    @task
    def generate_docs() -> str:
        """`dbt docs generate`, published where the Airflow UI serves it (Browse -> "dbt docs
        (feature catalogue)"): the column catalogue analysts read."""
        from core.dbt import docs_generate

        return str(docs_generate(database_url()))

    @task(outlets=[FEATURES], retries=0, execution_timeout=timedelta(minutes=30))
    def validate_features() -> dict:
        from expectations.checkpoint import validate_or_raise

        return validate_or_raise(database_url(), "features_daily", run_key=run_key()).as_dict()

    @task(outlets=[RETRAIN_REQUEST])
    def request_training() -> str:
        """Ordinary days never train (training is weekly, or on a retrain request). Two cases
        ask for one now, once (ml/registry/cadence.py): no @champion yet (a fresh stack:
        nothing could score these features until Monday), or a data correction that rewrote
        the champion's training data far back. Otherwise skipped, emitting nothing."""
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.registry.cadence import request_training as decide

        requested, why = decide(database_url())
        if not requested:
            raise AirflowSkipException(why)
        return why

    checks = [validate_labels(), validate_universe(), generate_docs()]
    validate_raw_prices() >> dbt_models >> checks
    checks >> validate_features() >> request_training()


dag = marketflow_features()

if __name__ == "__main__":
    dag.test()
