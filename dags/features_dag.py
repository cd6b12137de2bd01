"""raw.prices -> Great Expectations on raw -> dbt (one Cosmos task per model and test)
-> Great Expectations on the marts -> FEATURES asset. A failed checkpoint stops the run
before anything downstream can read bad data."""

import sys
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior
from marketflow.dbt import dbt_env

from dags.assets import FEATURES, RAW_PRICES
from dags.common import DEFAULT_ARGS, START_DATE, database_url

DBT_DIR = Path(__file__).resolve().parent.parent / "dbt"
MANIFEST = DBT_DIR / "target" / "manifest.json"


@dag(
    dag_id="marketflow_features",
    schedule=[RAW_PRICES],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["marketflow", "dbt", "validation"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
)
def marketflow_features():
    @task(retries=0)
    def validate_raw_prices() -> dict:
        from expectations.checkpoint import validate_or_raise

        return validate_or_raise(database_url(), "raw_prices").as_dict()

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
            load_method=LoadMode.AUTOMATIC, test_behavior=TestBehavior.AFTER_EACH
        ),
        operator_args={"install_deps": False, "retries": 1},
    )

    @task(outlets=[FEATURES], retries=0, execution_timeout=timedelta(minutes=30))
    def validate_features() -> dict:
        from expectations.checkpoint import validate_or_raise

        return validate_or_raise(database_url(), "features_daily").as_dict()

    validate_raw_prices() >> dbt_models >> validate_features()


dag = marketflow_features()

if __name__ == "__main__":
    dag.test()
