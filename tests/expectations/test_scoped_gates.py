"""Gates scoped to what changed (expectations/scope.py), on real dbt builds of synthetic bars.

After a first pass on the whole table, a checkpoint validates only the rows rebuilt since
its suite last passed; a bad row among them still fails it (and keeps failing until fixed),
an old row corrupted behind the pipeline's back is left to the full sweep, which catches it.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from core.dbt import build
from expectations.checkpoint import run_checkpoint
from expectations.scope import LABEL_REACH
from expectations.suites import MART_SUITES
from ingest.loader import load_prices
from ingest.providers.synthetic import SyntheticProvider, symbol_name
from tests.helpers import query

SYMBOLS = 8  # cross-sectional ranks need a few symbols a day
# Long enough for the 20-day warm-up of the cross-sectional ranks to stay under 5% of rows.
START, END = date(2022, 1, 3), date(2024, 6, 28)
ALL_SUITES = ("raw_prices", *MART_SUITES)
SYMBOL_A, SYMBOL_B = symbol_name(0), symbol_name(1)


def set_ret_1d(url: str, symbol: str, day: date, value: float) -> float:
    """Overwrite one row's ret_1d in the built mart; returns the value it had."""
    ((old,),) = query(
        url,
        "update marts.features_daily as f set ret_1d = %s from marts.features_daily as o"
        " where f.symbol = %s and f.trade_date = %s"
        " and o.symbol = f.symbol and o.trade_date = f.trade_date returning o.ret_1d",
        (value, symbol, day),
    )
    return float(old)


def validate_all(url: str, docs, **kwargs) -> dict:
    return {suite: run_checkpoint(url, suite, docs, **kwargs) for suite in ALL_SUITES}


@pytest.fixture(scope="module")
def days() -> list[date]:
    return [d.date() for d in pd.bdate_range(START, END)]


def test_scoped_gates_follow_the_rebuilds(make_database, tmp_path, days) -> None:
    url = make_database()
    provider = SyntheticProvider(n_symbols=SYMBOLS, start=START, end=END, gap_prob=0.0)
    load_prices(url, provider.fetch(end=days[-2]), "synthetic", today=END)
    build(url)

    # Before any pass every suite checks its whole table.
    first = validate_all(url, tmp_path)
    for suite, summary in first.items():
        assert summary.success, summary.describe()
        assert summary.scope == "whole table", suite
    n_rows = query(url, "select count(*) from marts.features_daily")[0][0]
    assert n_rows == SYMBOLS * (len(days) - 1)

    # Nothing changed since: only the whole-table invariants, over no rows, and they pass.
    idle = validate_all(url, tmp_path)
    for suite, summary in idle.items():
        assert summary.success, summary.describe()
        assert summary.rows_validated == 0, (suite, summary.scope)

    # An old row corrupted behind the pipeline's back: no rebuild covers it, so the daily
    # gate does not see it; the full sweep does, and names the row.
    old_day = days[40]
    old_value = set_ret_1d(url, SYMBOL_A, old_day, 50.0)
    assert run_checkpoint(url, "features_daily", tmp_path).success
    swept = run_checkpoint(url, "features_daily", tmp_path, full=True)
    assert not swept.success
    assert swept.scope == "whole table"
    assert old_day.isoformat() in swept.describe() and "ret_1d" in swept.describe()
    set_ret_1d(url, SYMBOL_A, old_day, old_value)

    # One new day: each gate validates the rows its mart rebuilt.
    new_day = days[-1]
    load_prices(url, provider.fetch(start=new_day, end=new_day), "synthetic", today=END)
    build(url)
    # A bad value among the rebuilt rows (as a broken formula would write it).
    new_value = set_ret_1d(url, SYMBOL_B, new_day, 50.0)
    caught = run_checkpoint(url, "features_daily", tmp_path)
    assert not caught.success
    assert caught.rows_validated == SYMBOLS
    assert caught.scope.startswith(f"rows from {new_day.isoformat()}")
    assert SYMBOL_B in caught.describe() and "ret_1d" in caught.describe()

    # A failure moves nothing: the same rows are checked again until they pass.
    set_ret_1d(url, SYMBOL_B, new_day, new_value)
    daily = validate_all(url, tmp_path)
    for summary in daily.values():
        assert summary.success, summary.describe()
    assert daily["raw_prices"].rows_validated == SYMBOLS
    assert daily["features_daily"].rows_validated == SYMBOLS
    assert daily["universe_daily"].rows_validated == SYMBOLS
    # labels_daily rewrote each symbol's last LABEL_REACH labels before the new day too.
    assert daily["labels_daily"].rows_validated == SYMBOLS * (LABEL_REACH + 1)
    assert daily["labels_daily"].scope.startswith(f"rows from {days[-1 - LABEL_REACH]}")

    runs = query(
        url,
        "select suite, scope, rows_validated, started_at is not null"
        " from monitoring.validation_runs order by id",
    )
    assert all(started for *_, started in runs)
    assert query(
        url,
        "select count(*) from pg_tables where schemaname = 'monitoring'"
        " and tablename like 'gx_scope_%%'",
    ) == [(0,)], "scratch tables must be dropped"


def test_a_full_rebuild_is_validated_whole(make_database, tmp_path) -> None:
    url = make_database()
    provider = SyntheticProvider(n_symbols=SYMBOLS, start=START, end=END, gap_prob=0.0)
    load_prices(url, provider.fetch(), "synthetic", today=END)
    build(url)
    assert all(s.success for s in validate_all(url, tmp_path).values())
    query(url, "drop table marts.features_daily cascade")
    build(url)  # rebuilt from scratch: its log says the whole table (rebuilt_from NULL)
    again = run_checkpoint(url, "features_daily", tmp_path)
    assert again.success, again.describe()
    assert again.scope == "whole table"
