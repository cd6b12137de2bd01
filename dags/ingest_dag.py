"""Load daily OHLCV from the configured provider into raw.prices.

Each run loads its own data interval plus a look-back (late corrections), as one batch. After
downtime (the stack off for days, runs skipped with catchup=False) a scheduled run starts from
the last bar already loaded (minus the look-back) instead: one run catches up every missing day.
A symbol (or file) the provider cannot deliver is logged and the others load; the task
fails loudly when more than MARKETFLOW_INGEST_MAX_FAILED_SHARE of them failed. Backfill a
past range with `airflow backfill create --dag-id marketflow_ingest --from-date ... --to-date ...`
or trigger with {"start": ..., "end": ...}.
"""

from datetime import timedelta

from airflow.sdk import Param, dag, task

from core.settings import get_settings
from dags.assets import RAW_PRICES
from dags.common import DEFAULT_ARGS, START_DATE, database_url
from dags.notify import failure_notifiers

INGEST = get_settings().ingest
LOOKBACK_DAYS = INGEST.lookback_days
MAX_FAILED_SHARE = INGEST.max_failed_share


@dag(
    dag_id="marketflow_ingest",
    schedule="0 22 * * 1-5",  # business days, after the US close
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["marketflow", "ingest"],
    default_args=DEFAULT_ARGS,
    on_failure_callback=failure_notifiers(),
    params={
        "provider": Param(
            None, type=["null", "string"], description="sample | csv | yahoo | synthetic"
        ),
        "path": Param(None, type=["null", "string"], description="csv provider: file or folder"),
        "start": Param(
            None,
            type=["null", "string"],
            format="date",
            description="default: interval start - look-back",
        ),
        "end": Param(
            None, type=["null", "string"], format="date", description="default: interval end"
        ),
        "symbols": Param(None, type=["null", "string"], description="comma-separated; default all"),
        "max_failed_share": Param(
            MAX_FAILED_SHARE,
            type="number",
            minimum=0,
            maximum=1,
            description="fail the task when more than this share of symbols/files failed",
        ),
    },
    doc_md=__doc__,
)
def marketflow_ingest():
    @task(outlets=[RAW_PRICES], execution_timeout=timedelta(hours=1))
    def load_prices(params=None, data_interval_start=None, data_interval_end=None) -> dict:
        from datetime import date

        from core.settings import get_settings
        from ingest.loader import ingest

        settings = get_settings()
        provider = params.get("provider") or settings.ingest.provider
        options = {}
        if params.get("path"):  # confined to the configured data roots
            options = {
                "path": params["path"],
                "allowed_roots": settings.ingest.data_roots,
                "max_file_bytes": settings.ingest.max_file_bytes,
            }
        start = date.fromisoformat(params["start"]) if params.get("start") else None
        end = date.fromisoformat(params["end"]) if params.get("end") else None
        if start is None and data_interval_start is not None:
            start = (data_interval_start - timedelta(days=LOOKBACK_DAYS)).date()
            from ingest.loader import latest_trade_date

            latest = latest_trade_date(database_url())
            if latest is not None and latest - timedelta(days=LOOKBACK_DAYS) < start:
                start = latest - timedelta(days=LOOKBACK_DAYS)
                print(f"catching up: the last bar loaded is {latest}, so loading from {start}")
        if end is None and data_interval_end is not None:
            end = data_interval_end.date()
        symbols = [s for s in (params.get("symbols") or "").split(",") if s] or None
        print(f"loading {provider} {start}..{end} symbols={symbols or 'all'}")
        result = ingest(database_url(), provider, symbols, start, end, provider_options=options)
        print(result.summary())
        for failure in result.failures:
            print(f"FAILED {failure['unit']}: {failure['error']}")
        if result.failed_share > float(params["max_failed_share"]):
            from airflow.sdk.exceptions import AirflowException

            raise AirflowException(
                f"{len(result.failures)} of {len(result.symbols) + len(result.failures)} units "
                f"failed ({result.failed_share:.0%} > {float(params['max_failed_share']):.0%}); "
                f"the others were loaded in batch {result.batch_id}"
            )
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
            "failed_units": [f["unit"] for f in result.failures],
        }

    load_prices()


dag = marketflow_ingest()

if __name__ == "__main__":
    dag.test()
