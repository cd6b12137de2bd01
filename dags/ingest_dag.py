"""Load daily OHLCV from the configured provider into raw.prices, then announce it.

What is loaded: the configured universe (a `universe` Param, the Variable
`marketflow_universe` or MARKETFLOW_UNIVERSE: symbols, start dates, an `active` flag; see
ingest/universe.py) from the provider of the Connection `marketflow_provider` (its extra
names the provider and its path, its login/password the credentials; ingest/source.py), else
MARKETFLOW_DATA_PROVIDER. Each run loads its own data interval plus a look-back (late
corrections), as one batch. After downtime (runs skipped with catchup=False) a scheduled run
starts from the last bar already loaded (minus the look-back): one run catches up every
missing day. A symbol (or file) the provider cannot deliver is logged and the others load;
the task fails loudly when more than MARKETFLOW_INGEST_MAX_FAILED_SHARE of them failed.

`announce` emits the raw_prices Asset for every batch that changed rows and was not announced
yet, and only when no other load of this DAG is still to run: a backfill of a year
(`airflow backfill create --dag-id marketflow_ingest --from-date ... --to-date ...`, one run
per day) triggers the features DAG once, from its last run. One run with {"start": ...,
"end": ...} (`marketflow backfill`) loads a range as one batch. `check_freshness` reports
active symbols without the market's latest bar.
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
# Task states of a load still to come (None: created, not yet scheduled; "null" in the API).
UNFINISHED = [
    "null", "scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "deferred",
    "restarting",
]  # fmt: skip


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
            None,
            type=["null", "string"],
            description="sample | csv | yahoo | synthetic; default: the Connection "
            "marketflow_provider, else MARKETFLOW_DATA_PROVIDER",
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
        "symbols": Param(
            None, type=["null", "string"], description="comma-separated; default: the universe"
        ),
        "universe": Param(
            None,
            type=["null", "string"],
            description="universe file (symbol,start,active); default: the Variable "
            "marketflow_universe, else MARKETFLOW_UNIVERSE, else every symbol of the provider",
        ),
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
    @task(execution_timeout=timedelta(hours=1), max_active_tis_per_dag=1)
    def load_prices(params=None, data_interval_start=None, data_interval_end=None) -> dict:
        from datetime import date

        from core.settings import get_settings
        from ingest.loader import ingest, latest_trade_date
        from ingest.source import resolve_source
        from ingest.universe import fetch_plan, read_universe, store_universe

        settings = get_settings()
        source = resolve_source(
            settings.ingest,
            provider_param=params.get("provider"),
            path_param=params.get("path"),
            connection=_provider_connection(settings.ingest.provider_conn_id),
        )
        start = date.fromisoformat(params["start"]) if params.get("start") else None
        end = date.fromisoformat(params["end"]) if params.get("end") else None
        if start is None and data_interval_start is not None:
            start = (data_interval_start - timedelta(days=LOOKBACK_DAYS)).date()
            latest = latest_trade_date(database_url())
            if latest is not None and latest - timedelta(days=LOOKBACK_DAYS) < start:
                start = latest - timedelta(days=LOOKBACK_DAYS)
                print(f"catching up: the last bar loaded is {latest}, so loading from {start}")
        if end is None and data_interval_end is not None:
            end = data_interval_end.date()
        symbols = [s.strip().upper() for s in (params.get("symbols") or "").split(",") if s]
        plan = None
        universe = _universe_file(params, settings.ingest.universe)
        if universe and not symbols:
            members = read_universe(universe)
            store_universe(database_url(), members, source=universe)
            plan = fetch_plan(members, start)
            active = sum(len(group) for group, _ in plan)
            print(f"universe {universe}: {active} active of {len(members)} symbols")
        print(f"loading {source.provider} (from {source.origin}) {start}..{end} "
              f"symbols={symbols or ('universe' if plan else 'all')}")  # fmt: skip
        result = ingest(
            database_url(), source.provider, symbols or None, start, end,
            provider_options=source.options, plan=plan,
        )  # fmt: skip
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
        return {
            "batch_id": result.batch_id,
            "rows_in": result.rows_in,
            "inserted": result.rows_inserted,
            "updated": result.rows_updated,
            "unchanged": result.rows_unchanged,
            "rejected": result.rows_rejected,
            "failed_units": [f["unit"] for f in result.failures],
        }

    @task(outlets=[RAW_PRICES], max_active_tis_per_dag=1)
    def announce(ti=None) -> list[str]:
        """Emit raw_prices for every batch not yet announced, unless more loads of this DAG
        are still to run: the 260 runs of a one-year `airflow backfill` emit one event, from
        the last of them. Skipped tasks emit nothing, so an unchanged day re-runs nothing."""
        from airflow.sdk.exceptions import AirflowSkipException

        from ingest.loader import announce_pending

        waiting = ti.get_ti_count(
            dag_id=ti.dag_id, task_ids=["load_prices", "announce"], states=UNFINISHED
        )
        others = waiting - 1  # this task is one of them
        if others > 0:
            raise AirflowSkipException(
                f"{others} load(s) of this DAG still to run (a backfill, or a queued run): "
                "the last of them announces raw_prices, once for all"
            )
        batches = announce_pending(database_url())
        if not batches:
            raise AirflowSkipException("no rows inserted or updated: raw_prices not emitted")
        print(f"announcing {len(batches)} batch(es) that changed rows: {', '.join(batches)}")
        return batches

    @task
    def check_freshness(**context) -> list[str]:
        """Report the active universe symbols whose last bar is older than the market's (the
        monitoring.symbol_freshness view): logged and sent through the notifiers, not
        failed (a halted stock must not stop the pipeline), never silently skipped."""
        from dags.notify import send
        from ingest.universe import stale_symbols

        stale = stale_symbols(database_url())
        if stale:
            shown = ", ".join(
                f"{s.symbol} (last bar {s.last_trade_date or 'never'})" for s in stale[:20]
            )
            more = f" and {len(stale) - 20} more" if len(stale) > 20 else ""
            message = (
                f"{len(stale)} active symbol(s) have no bar on {stale[0].market_date}, the "
                f"market's latest day: {shown}{more}"
            )
            print(message)
            send("stale_symbols", message, context)
        return [s.symbol for s in stale]

    loaded = load_prices()
    loaded >> [announce(), check_freshness()]


def _provider_connection(conn_id: str):
    """The provider's Airflow Connection as ingest.source wants it; None when not defined."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from ingest.source import ProviderConnection

    if not conn_id:
        return None
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    return ProviderConnection(conn_id, conn.extra_dejson, conn.login, conn.password)


def _universe_file(params, default: str) -> str:
    """The universe file of this run: the `universe` Param, else the Airflow Variable
    `marketflow_universe`, else MARKETFLOW_UNIVERSE (empty: every symbol of the provider)."""
    from airflow.sdk import Variable

    return params.get("universe") or Variable.get("marketflow_universe", default) or ""


dag = marketflow_ingest()

if __name__ == "__main__":
    dag.test()
