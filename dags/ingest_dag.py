"""Load daily OHLCV from the configured provider into raw.prices."""

from datetime import timedelta

from airflow.sdk import Param, dag, task

from dags.assets import RAW_PRICES
from dags.common import DEFAULT_ARGS, START_DATE, database_url

LOOKBACK_DAYS = 5  # re-load a few days so late corrections land


@dag(
    dag_id="marketflow_ingest",
    schedule="0 22 * * 1-5",  # business days, after the US close
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["marketflow", "ingest"],
    default_args=DEFAULT_ARGS,
    params={
        "provider": Param(
            None, type=["null", "string"], description="overrides MARKETFLOW_DATA_PROVIDER"
        ),
        "start": Param(
            None,
            type=["null", "string"],
            format="date",
            description="first date (default: interval start - look-back)",
        ),
        "end": Param(
            None,
            type=["null", "string"],
            format="date",
            description="last date (default: interval end)",
        ),
        "symbols": Param(None, type=["null", "string"], description="comma-separated; default all"),
    },
    doc_md=__doc__,
)
def marketflow_ingest():
    @task(outlets=[RAW_PRICES], execution_timeout=timedelta(hours=1))
    def load_prices(params=None, data_interval_start=None, data_interval_end=None) -> dict:
        from datetime import date

        from ingest.loader import ingest
        from marketflow.settings import get_settings

        settings = get_settings()
        provider = params.get("provider") or settings.data_provider
        start = date.fromisoformat(params["start"]) if params.get("start") else None
        end = date.fromisoformat(params["end"]) if params.get("end") else None
        if start is None and data_interval_start is not None:
            start = (data_interval_start - timedelta(days=LOOKBACK_DAYS)).date()
        if end is None and data_interval_end is not None:
            end = data_interval_end.date()
        symbols = [s for s in (params.get("symbols") or "").split(",") if s] or None
        result = ingest(database_url(), provider, symbols, start, end)
        print(result.summary())
        if not result.changed:
            from airflow.sdk.exceptions import AirflowSkipException

            # Skipped tasks emit no Asset event: nothing downstream re-runs for unchanged data.
            raise AirflowSkipException(
                f"no rows inserted or updated ({result.rows_unchanged} unchanged, "
                f"{result.rows_rejected} rejected): raw_prices not emitted"
            )
        return {
            "batch_id": result.batch_id,
            "rows_in": result.rows_in,
            "inserted": result.rows_inserted,
            "updated": result.rows_updated,
            "unchanged": result.rows_unchanged,
            "rejected": result.rows_rejected,
        }

    load_prices()


dag = marketflow_ingest()

if __name__ == "__main__":
    dag.test()
