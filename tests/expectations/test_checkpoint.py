"""Real checkpoints against real PostgreSQL databases: good data passes, bad data fails loudly."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from core.catalogue import feature_catalogue
from core.urls import database_name
from expectations.checkpoint import (
    ValidationFailed,
    ValidationSummary,
    run_checkpoint,
    validate_or_raise,
)
from expectations.suites import SUITES

PRICE_COLUMNS = ("symbol", "trade_date", "open", "high", "low", "close", "adj_close", "volume")
# A stand-in for the dbt-built mart with every catalogued feature column (all double precision).
FEATURES = tuple(feature_catalogue())
FEATURE_COLUMNS = ("symbol", "trade_date", "adj_close", "history_days", *FEATURES)
WARM_UP = {name: meta.get("first_history_days", 1) for name, meta in feature_catalogue().items()}


def features_ddl(without: str | None = None) -> str:
    columns = ",\n".join(f"    {name} double precision" for name in FEATURES if name != without)
    return (
        "create table marts.features_daily (\n    symbol text not null,\n"
        "    trade_date date not null,\n    adj_close double precision,\n"
        f"    history_days integer,\n{columns}\n)"
    )


DAYS = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(5)]


def execute(url: str, statement: str, params: Any = None) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def insert(url: str, table: str, columns: tuple[str, ...], rows: list[dict]) -> None:
    placeholders = ", ".join(["%s"] * len(columns))
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.executemany(
                f"insert into {table} ({', '.join(columns)}) values ({placeholders})",
                [tuple(row[c] for c in columns) for row in rows],
            )
    finally:
        conn.close()


def good_prices() -> list[dict]:
    rows = []
    for symbol, base in (("AAA", 100.0), ("BBB", 20.0)):
        for i, day in enumerate(DAYS):
            close = base + i
            rows.append(
                {
                    "symbol": symbol,
                    "trade_date": day,
                    "open": close - 0.5,
                    "high": close + 1.0,
                    "low": close - 1.0,
                    "close": close,
                    "adj_close": close,
                    "volume": 1_000 + i,
                }
            )
    return rows


def insert_prices(url: str, rows: list[dict]) -> None:
    batch_id = "00000000-0000-0000-0000-000000000001"
    insert(
        url,
        "raw.prices",
        (*PRICE_COLUMNS, "provider", "batch_id"),
        [{**row, "provider": "test", "batch_id": batch_id} for row in rows],
    )


def good_features() -> list[dict]:
    """Every feature set to a value inside every documented range, windowed ones NULL on each
    symbol's first row (dbt leaves a window NULL until it is full)."""
    rows = []
    for symbol in ("AAA", "BBB"):
        for i, day in enumerate(DAYS):
            row = {"symbol": symbol, "trade_date": day, "adj_close": 100.0 + i}
            row["history_days"] = i + 1
            row |= {name: 0.5 if i or WARM_UP[name] == 1 else None for name in FEATURES}
            rows.append(row)
    return rows


def create_features(url: str, rows: list[dict]) -> None:
    execute(url, features_ddl())
    insert(url, "marts.features_daily", FEATURE_COLUMNS, rows)


def recorded_runs(url: str) -> list[tuple]:
    return execute(
        url,
        "select suite, data_asset, success, evaluated, failed, failed_expectations"
        " from monitoring.validation_runs order by id",
    )


def failed_pairs(summary: ValidationSummary) -> list[tuple[str, str | None]]:
    return [(f["expectation"], f["column"]) for f in summary.failed_expectations]


@pytest.fixture
def db(make_database, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("MARKETFLOW_DATA_DIR", str(tmp_path))  # Data Docs land here
    return make_database()


def test_good_prices_pass_and_the_run_is_recorded(db: str) -> None:
    insert_prices(db, good_prices())

    summary = validate_or_raise(db, "raw_prices")

    expected_count = len(SUITES["raw_prices"][2]().expectations)
    assert summary.success
    assert (summary.suite, summary.data_asset) == ("raw_prices", "raw.prices")
    assert (summary.evaluated, summary.failed, summary.failed_expectations) == (
        expected_count,
        0,
        [],
    )
    assert recorded_runs(db) == [("raw_prices", "raw.prices", True, expected_count, 0, [])]
    assert (
        summary.validation_run_id == execute(db, "select id from monitoring.validation_runs")[0][0]
    )


@pytest.mark.parametrize(
    ("change", "expectation", "column"),
    [
        (
            {"high": 99.0, "low": 101.0},
            "expect_column_pair_values_a_to_be_greater_than_b",
            "high, low",
        ),
        ({"close": 0.0}, "expect_column_values_to_be_between", "close"),
        ({"adj_close": -1.5}, "expect_column_values_to_be_between", "adj_close"),
        ({"open": 0.0}, "expect_column_values_to_be_between", "open"),
        ({"volume": -1}, "expect_column_values_to_be_between", "volume"),
    ],
    ids=["high_below_low", "zero_close", "negative_adj_close", "zero_open", "negative_volume"],
)
def test_a_bad_price_row_fails_naming_the_expectation(
    db: str, change: dict, expectation: str, column: str
) -> None:
    rows = good_prices()
    rows[2].update(change)  # AAA on 2024-01-04
    insert_prices(db, rows)

    with pytest.raises(ValidationFailed) as raised:
        validate_or_raise(db, "raw_prices")

    summary = raised.value.summary
    assert not summary.success
    assert summary.failed == 1
    assert failed_pairs(summary) == [(expectation, column)]
    assert expectation in str(raised.value) and f"[{column}]" in str(raised.value)
    (run,) = recorded_runs(db)
    assert run[2:5] == (False, summary.evaluated, 1)
    assert [(f["expectation"], f["column"]) for f in run[5]] == [(expectation, column)]


def test_a_failure_names_the_offending_row_and_observed_values(db: str) -> None:
    rows = good_prices()
    rows[2].update({"high": 99.0, "low": 101.0})
    rows[7]["close"] = -2.0
    insert_prices(db, rows)

    summary = run_checkpoint(db, "raw_prices")

    by_column = {f["column"]: f for f in summary.failed_expectations}
    # Checked row by row, so the failure names the row, not only the column's minimum.
    assert by_column["close"]["observed"]["examples"] == [
        {"symbol": "BBB", "trade_date": "2024-01-04", "close": -2.0}
    ]
    assert by_column["close"]["expected"] == {"min_value": 0.0, "strict_min": True}
    high_low = by_column["high, low"]["observed"]
    assert high_low["unexpected_count"] == 1
    assert high_low["examples"] == [
        {"symbol": "AAA", "trade_date": "2024-01-04", "high": 99.0, "low": 101.0}
    ]
    message = summary.describe()
    assert "FAILED" in message and "2024-01-04" in message and '"close": -2.0' in message


def test_an_empty_table_fails_on_row_count(db: str) -> None:
    summary = run_checkpoint(db, "raw_prices")

    assert not summary.success
    row_count = [
        f
        for f in summary.failed_expectations
        if f["expectation"] == "expect_table_row_count_to_be_between"
    ]
    assert [f["observed"] for f in row_count] == [0]


def test_good_features_with_null_warm_up_windows_pass(db: str) -> None:
    create_features(db, good_features())

    summary = validate_or_raise(db, "features_daily")

    assert summary.success and summary.failed == 0
    assert summary.data_asset == "marts.features_daily"
    assert recorded_runs(db)[0][:3] == ("features_daily", "marts.features_daily", True)


@pytest.mark.parametrize(
    ("change", "column"),
    [({"rsi_14": 150.0}, "rsi_14"), ({"ret_1d": -0.95}, "ret_1d"), ({"vol_20d": -0.1}, "vol_20d")],
    ids=["rsi_above_100", "split_mistaken_for_crash", "negative_volatility"],
)
def test_out_of_range_feature_fails(db: str, change: dict, column: str) -> None:
    rows = good_features()
    rows[-1].update(change)  # BBB on 2024-01-06
    create_features(db, rows)

    with pytest.raises(ValidationFailed, match=rf"expect_column_values_to_be_between \[{column}\]"):
        validate_or_raise(db, "features_daily")

    (run,) = recorded_runs(db)
    assert run[2:5] == (False, len(SUITES["features_daily"][2]().expectations), 1)
    assert run[5][0]["observed"]["examples"] == [
        {"symbol": "BBB", "trade_date": "2024-01-06", column: change[column]}
    ]


def test_duplicate_keys_fail_features(db: str) -> None:
    rows = good_features()
    create_features(db, [*rows, rows[0]])

    summary = run_checkpoint(db, "features_daily")

    assert failed_pairs(summary) == [("expect_compound_columns_to_be_unique", "symbol, trade_date")]


def test_a_missing_table_raises_instead_of_passing(db: str) -> None:
    with pytest.raises(Exception, match="features_daily"):
        run_checkpoint(db, "features_daily")
    assert recorded_runs(db) == []


def test_unknown_suite_is_rejected(db: str) -> None:
    with pytest.raises(ValueError, match="unknown suite 'nope'"):
        run_checkpoint(db, "nope")


def test_no_connection_is_left_open(db: str, admin_url: str) -> None:
    insert_prices(db, good_prices())
    run_checkpoint(db, "raw_prices")
    rows = good_features()
    rows[-1]["rsi_14"] = 150.0
    create_features(db, rows)
    with pytest.raises(ValidationFailed):
        validate_or_raise(db, "features_daily")

    # A backend leaves pg_stat_activity shortly after its client disconnects.
    deadline = time.monotonic() + 5
    while (open_connections := _connections(admin_url, database_name(db))) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert open_connections == 0


def _connections(admin_url: str, database: str) -> int:
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True  # a fresh statistics snapshot on every query
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from pg_stat_activity where datname = %s", (database,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_importing_is_cheap_and_gx_logs_stay_quiet() -> None:
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "import expectations.checkpoint, expectations.suites\n"
        "assert 'great_expectations' not in sys.modules, 'imported great_expectations eagerly'\n"
        "expectations.suites.raw_prices()\n"
        "assert 'great_expectations' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy()
    )
    assert done.returncode == 0, done.stderr
    assert "great_expectations" not in done.stderr, done.stderr[:2000]


def test_a_missing_column_fails_with_the_database_error(db: str) -> None:
    execute(db, features_ddl(without="rsi_14"))
    columns = tuple(c for c in FEATURE_COLUMNS if c != "rsi_14")
    insert(db, "marts.features_daily", columns, good_features())

    with pytest.raises(ValidationFailed, match=r"\[rsi_14\].*error: .*rsi_14.* does not exist"):
        validate_or_raise(db, "features_daily")


def test_a_feature_null_after_its_warm_up_fails(db: str) -> None:
    rows = good_features()
    for row in rows:
        row["ma_5d"] = None  # first value due at history_days 5: rows 5 of both symbols
    create_features(db, rows)

    summary = run_checkpoint(db, "features_daily")

    assert failed_pairs(summary) == [("unexpected_rows_expectation", None)]
    assert summary.failed_expectations[0]["observed"] == 1  # one feature over the limit


def test_features_dated_beyond_the_raw_data_fail(db: str) -> None:
    insert_prices(db, [row for row in good_prices() if row["trade_date"] < DAYS[-1]])
    create_features(db, good_features())

    summary = run_checkpoint(db, "features_daily")

    assert failed_pairs(summary) == [("unexpected_rows_expectation", None)]
    assert summary.failed_expectations[0]["observed"] == 2  # AAA and BBB on the last day


def good_labels() -> list[dict]:
    """Forward returns with the documented NULL tail: the last `horizon` rows of a symbol."""
    horizons = {"fwd_ret_1d": 1, "fwd_ret_5d": 5, "fwd_ret_20d": 20, "trade_ret_1d": 2}
    rows = []
    for symbol in ("AAA", "BBB"):
        for i, day in enumerate(DAYS):
            rows_after = len(DAYS) - 1 - i
            row = {"symbol": symbol, "trade_date": day}
            row |= {name: 0.01 if rows_after >= h else None for name, h in horizons.items()}
            rows.append(row)
    return rows


LABEL_COLUMNS = ("symbol", "trade_date", "fwd_ret_1d", "fwd_ret_5d", "fwd_ret_20d", "trade_ret_1d")


def create_labels(url: str, rows: list[dict]) -> None:
    execute(
        url,
        "create table marts.labels_daily (symbol text not null, trade_date date not null,"
        " fwd_ret_1d double precision, fwd_ret_5d double precision,"
        " fwd_ret_20d double precision, trade_ret_1d double precision)",
    )
    insert(url, "marts.labels_daily", LABEL_COLUMNS, rows)


def test_labels_pass_and_a_label_missing_despite_a_future_fails(db: str) -> None:
    create_features(db, good_features())
    create_labels(db, good_labels())
    assert validate_or_raise(db, "labels_daily").success

    execute(db, "update marts.labels_daily set fwd_ret_1d = null where trade_date = %s", (DAYS[1],))
    execute(
        db, "delete from marts.labels_daily where symbol = 'BBB' and trade_date = %s", (DAYS[0],)
    )
    summary = run_checkpoint(db, "labels_daily")

    failed = {f["observed"] for f in summary.failed_expectations}
    assert failed_pairs(summary) == [("unexpected_rows_expectation", None)] * 2
    assert failed == {2, 1}  # two rows NULL too early; one key missing from the labels


def create_universe(url: str, rows: list[dict]) -> None:
    execute(
        url,
        "create table marts.universe_daily (symbol text not null, trade_date date not null,"
        " in_universe boolean, reason text)",
    )
    insert(url, "marts.universe_daily", ("symbol", "trade_date", "in_universe", "reason"), rows)


def test_universe_needs_a_row_per_feature_row_and_a_consistent_reason(db: str) -> None:
    create_features(db, good_features())
    rows = [
        {
            "symbol": row["symbol"],
            "trade_date": row["trade_date"],
            "in_universe": row["history_days"] >= 3,
            "reason": "eligible" if row["history_days"] >= 3 else "insufficient_history",
        }
        for row in good_features()
    ]
    create_universe(db, rows)
    summary = validate_or_raise(db, "universe_daily")
    assert summary.success

    execute(
        db, "delete from marts.universe_daily where symbol = 'AAA' and trade_date = %s", (DAYS[0],)
    )
    execute(
        db, "update marts.universe_daily set in_universe = false where trade_date = %s", (DAYS[4],)
    )
    summary = run_checkpoint(db, "universe_daily")
    assert sorted(f["observed"] for f in summary.failed_expectations) == [1, 2]


def test_every_run_writes_its_data_docs(db: str, tmp_path: Path) -> None:
    insert_prices(db, good_prices())
    summary = validate_or_raise(db, "raw_prices")
    assert summary.data_docs == str(
        tmp_path / "reports" / "data_docs" / "raw_prices" / "index.html"
    )
    assert (
        "raw_prices"
        in (tmp_path / "reports" / "data_docs" / "raw_prices" / "index.html").read_text()
    )

    rows = good_features()
    rows[-1]["rsi_14"] = 150.0
    create_features(db, rows)
    failed = run_checkpoint(db, "features_daily")  # a failed run is rendered too
    assert failed.data_docs and "features_daily" in open(failed.data_docs).read()
    pages = list(
        (tmp_path / "reports" / "data_docs" / "features_daily" / "validations").rglob("*.html")
    )
    assert len(pages) == 1


def test_every_run_writes_a_summary_page_that_renders_offline(db: str, tmp_path: Path) -> None:
    import re

    insert_prices(db, good_prices())
    passed = validate_or_raise(db, "raw_prices")
    assert passed.report == str(tmp_path / "reports" / "data_docs" / "raw_prices" / "summary.html")
    assert passed.as_dict()["report"] == passed.report
    page = Path(passed.report).read_text()
    assert 'Validation of raw_prices: <span class="ok">passed</span>' in page
    assert f"{passed.evaluated} of {passed.evaluated} expectations met" in page

    rows = good_features()
    rows[-1]["rsi_14"] = 150.0
    create_features(db, rows)
    failed = run_checkpoint(db, "features_daily")
    assert failed.report is not None
    page = Path(failed.report).read_text()
    assert '<span class="bad">FAILED</span>' in page
    met = failed.evaluated - failed.failed
    assert f"{met} of {failed.evaluated} expectations met" in page
    # Failures first, with the offending row's key.
    first_row = page.split('<tr class="', 2)[1]
    assert first_row.startswith("failed") and "rsi_14" in first_row
    assert rows[-1]["symbol"] in first_row
    assert page.count('<tr class="failed">') == failed.failed
    assert page.count('<tr class="passed">') == met
    # Self-contained: no script, no stylesheet or image from anywhere, no URL at all.
    assert not re.search(r"<script|<link|<img|https?://|//cdn", page, re.IGNORECASE)


def test_a_rerun_of_the_same_task_replaces_its_record_instead_of_adding_one(db: str) -> None:
    insert_prices(db, good_prices())
    first = validate_or_raise(db, "raw_prices", run_key="marketflow_features/run1/validate")
    again = validate_or_raise(db, "raw_prices", run_key="marketflow_features/run1/validate")
    other = validate_or_raise(db, "raw_prices", run_key="marketflow_features/run2/validate")
    validate_or_raise(db, "raw_prices")  # a CLI run: no key, always a row of its own

    assert again.validation_run_id == first.validation_run_id != other.validation_run_id
    keys = execute(db, "select run_key from monitoring.validation_runs order by id")
    assert keys == [("marketflow_features/run1/validate",),
                    ("marketflow_features/run2/validate",), (None,)]  # fmt: skip
