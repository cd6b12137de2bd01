"""The loader against a real PostgreSQL: idempotent, all-or-nothing, nothing silently dropped."""

from __future__ import annotations

from datetime import date

import pandas as pd
import psycopg2
import pytest

from ingest.loader import ingest, load_prices
from tests.helpers import query as _rows

TODAY = date(2024, 6, 28)


def _checksum(url: str) -> tuple[int, str]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "select count(*), md5(coalesce(string_agg(p::text, '|' order by symbol, trade_date), '')) "
            "from raw.prices p"
        )
        result = cur.fetchone()
    conn.close()
    return result


def _frame(rows: list[tuple]) -> pd.DataFrame:
    cols = ["symbol", "trade_date", "open", "high", "low", "close", "adj_close", "volume"]
    return pd.DataFrame(rows, columns=cols)


GOOD = [
    ("AAA", "2024-01-02", 10.0, 11.0, 9.5, 10.5, 10.5, 1000),
    ("AAA", "2024-01-03", 10.5, 11.5, 10.0, 11.0, 11.0, 1200),
    ("BBB", "2024-01-02", 20.0, 21.0, 19.0, 20.5, 20.5, 500),
]


def test_sample_load_twice_leaves_raw_prices_identical(make_database):
    url = make_database()
    first = ingest(url, "sample", ["AAPL", "IBM"], date(2010, 1, 1), date(2010, 12, 31))
    assert first.rows_inserted == first.rows_in > 400
    before = _checksum(url)

    second = ingest(url, "sample", ["AAPL", "IBM"], date(2010, 1, 1), date(2010, 12, 31))

    assert (second.rows_inserted, second.rows_updated) == (0, 0)
    assert second.rows_unchanged == first.rows_in
    assert not second.changed
    assert _checksum(url) == before
    batches = _rows(
        url,
        "select status, rows_in, rows_inserted, rows_unchanged from raw.ingest_batches order by started_at",
    )
    assert batches == [
        ("succeeded", first.rows_in, first.rows_in, 0),
        ("succeeded", first.rows_in, 0, first.rows_in),
    ]


def test_bad_rows_are_quarantined_with_a_reason_and_good_rows_load(make_database):
    url = make_database()
    bad = [
        ("CCC", "not a date", 1, 2, 0.5, 1.5, 1.5, 10),
        ("CCC", "2024-01-02", 1, 2, 0.5, "abc", 1.5, 10),
        ("CCC", "2024-01-03", -1, 2, 0.5, 1.5, 1.5, 10),
        ("CCC", "2024-01-04", 1, 0.9, 1.1, 1.0, 1.0, 10),
        ("CCC", "2099-01-05", 1, 2, 0.5, 1.5, 1.5, 10),
        ("CCC", "2024-01-08", 1, 2, 0.5, 1.5, 1.5, -5),
        ("DDD", "2024-01-02", 1, 2, 0.5, 1.5, 1.5, 10),
        ("DDD", "2024-01-02", 1, 2, 0.5, 1.6, 1.6, 10),
        ("EEE", "2024-01-02", 1, 2, 0.5, float("nan"), 1.5, 10),
    ]
    result = load_prices(url, [_frame(GOOD + bad)], "test", today=TODAY)

    assert result.rows_in == len(GOOD) + len(bad)
    assert result.rows_inserted == len(GOOD)
    assert result.rows_rejected == len(bad)
    assert _rows(url, "select count(*) from raw.prices") == [(len(GOOD),)]
    reasons = dict(
        _rows(
            url,
            "select row_data->>'trade_date' || '/' || symbol || '/' || (row_data->>'close'), reason from raw.rejected_prices",
        )
    )
    assert reasons["not a date/CCC/1.5"] == "unparseable trade_date (expected YYYY-MM-DD)"
    assert reasons["2024-01-02/CCC/abc"] == "missing or non-numeric close"
    assert reasons["2024-01-03/CCC/1.5"] == "open must be > 0"
    assert reasons["2024-01-04/CCC/1.0"].startswith("inconsistent OHLC")
    assert reasons["2099-01-05/CCC/1.5"] == "trade_date in the future"
    assert reasons["2024-01-08/CCC/1.5"] == "volume must be >= 0"
    assert (
        reasons["2024-01-02/DDD/1.5"]
        == reasons["2024-01-02/DDD/1.6"]
        == "duplicate (symbol, trade_date) in batch"
    )
    assert _rows(url, "select count(*) from raw.rejected_prices where symbol = 'EEE'") == [(1,)]
    assert result.rejected_by_reason["duplicate (symbol, trade_date) in batch"] == 2


def test_a_corrected_row_is_updated_and_counted(make_database):
    url = make_database()
    load_prices(url, [_frame(GOOD)], "test", today=TODAY)
    corrected = list(GOOD)
    corrected[1] = ("AAA", "2024-01-03", 10.5, 11.5, 10.0, 11.2, 11.2, 1200)

    result = load_prices(url, [_frame(corrected)], "test", today=TODAY)

    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (0, 1, 2)
    assert _rows(
        url, "select close from raw.prices where symbol='AAA' and trade_date='2024-01-03'"
    ) == [(11.2,)]


def test_a_failing_batch_leaves_the_previous_state_and_logs_the_failure(make_database):
    url = make_database()
    load_prices(url, [_frame(GOOD)], "test", today=TODAY)
    before = _checksum(url)

    def frames():
        yield _frame([("AAA", "2024-01-04", 11, 12, 10.5, 11.5, 11.5, 900)])
        raise ConnectionError("provider went away mid-batch")

    with pytest.raises(ConnectionError):
        load_prices(url, frames(), "test", today=TODAY)

    assert _checksum(url) == before
    failed = _rows(url, "select status, error from raw.ingest_batches where status <> 'succeeded'")
    assert failed == [("failed", "ConnectionError: provider went away mid-batch")]


def test_unknown_provider_and_symbol_get_clear_errors(make_database):
    url = make_database()
    with pytest.raises(ValueError, match="unknown data provider 'nope'"):
        ingest(url, "nope")
    with pytest.raises(ValueError, match="no data for ZZZZ"):
        ingest(url, "sample", ["ZZZZ"])


def test_duplicates_across_frames_are_rejected_in_sql(make_database):
    url = make_database()
    first = _frame(GOOD)
    again = _frame([("AAA", "2024-01-03", 10.5, 11.5, 10.0, 11.1, 11.1, 1200)])

    result = load_prices(url, [first, again], "test", today=TODAY)

    assert result.rows_inserted == len(GOOD) - 1
    assert result.rejected_by_reason == {"duplicate (symbol, trade_date) in batch": 2}
    assert _rows(url, "select count(*) from raw.prices where trade_date = '2024-01-03'") == [(0,)]
    assert _rows(url, "select count(*) from raw.rejected_prices where symbol = 'AAA'") == [(2,)]


def test_new_keys_go_straight_in_and_known_ones_through_the_stage(make_database):
    url = make_database()
    first = load_prices(url, [_frame(GOOD)], "test", today=TODAY)
    assert first.rows_direct == first.rows_inserted == len(GOOD)
    assert "copy_direct_s" in first.timings and "copy_s" not in first.timings

    known = _frame([("AAA", "2024-01-03", 10.5, 11.5, 10.0, 11.3, 11.3, 1200)])  # a correction
    new_symbol = _frame([("CCC", "2024-01-02", 5.0, 5.5, 4.5, 5.2, 5.2, 300)])
    new_day = _frame([("BBB", "2024-01-03", 20.5, 21.5, 20.0, 21.0, 21.0, 600)])  # after BBB's span
    result = load_prices(url, [known, new_symbol, new_day], "test", today=TODAY)

    assert (result.rows_inserted, result.rows_direct, result.rows_updated) == (2, 2, 1)
    assert result.rows_unchanged == 0
    rows = _rows(
        url,
        "select symbol, trade_date::text, close, batch_id::text from raw.prices order by 1, 2",
    )
    assert [(s, d, c) for s, d, c, _ in rows] == [
        ("AAA", "2024-01-02", 10.5),
        ("AAA", "2024-01-03", 11.3),
        ("BBB", "2024-01-02", 20.5),
        ("BBB", "2024-01-03", 21.0),
        ("CCC", "2024-01-02", 5.2),
    ]
    batch_of = {(s, d): b for s, d, _, b in rows}
    assert batch_of[("AAA", "2024-01-02")] == first.batch_id  # unchanged rows are not rewritten
    assert {
        batch_of[k] for k in [("AAA", "2024-01-03"), ("BBB", "2024-01-03"), ("CCC", "2024-01-02")]
    } == {result.batch_id}


_PRIMARY_KEY = (
    "select pg_get_constraintdef(oid) from pg_constraint "
    "where conrelid = 'raw.prices'::regclass and contype = 'p'"
)


def test_an_initial_load_builds_the_primary_key_once_and_a_failed_one_keeps_it(make_database):
    url = make_database()

    def frames():
        yield _frame(GOOD)
        raise ConnectionError("provider went away mid-batch")

    with pytest.raises(ConnectionError):
        load_prices(url, frames(), "test", today=TODAY)
    assert _rows(url, _PRIMARY_KEY) == [("PRIMARY KEY (symbol, trade_date)",)]
    assert _rows(url, "select count(*) from raw.prices") == [(0,)]

    result = load_prices(url, [_frame(GOOD[:2]), _frame(GOOD[2:])], "test", today=TODAY)

    assert "index_s" in result.timings and result.rows_direct == len(GOOD)
    assert _rows(url, _PRIMARY_KEY) == [("PRIMARY KEY (symbol, trade_date)",)]
    # the batch's provider and id were column defaults during the load, and only then
    assert _rows(url, "select distinct provider, batch_id::text from raw.prices") == [
        ("test", result.batch_id)
    ]
    assert _rows(
        url,
        "select column_name from information_schema.columns where table_schema = 'raw' "
        "and table_name = 'prices' and column_default is not null",
    ) == [("ingested_at",)]
    again = load_prices(url, [_frame(GOOD)], "test", today=TODAY)
    assert "index_s" not in again.timings and again.rows_unchanged == len(GOOD)


def test_a_duplicate_of_a_directly_copied_row_rejects_both_copies(make_database):
    url = make_database()
    direct = _frame(GOOD)  # empty table: COPYed straight into raw.prices
    again = _frame([("BBB", "2024-01-02", 20.0, 21.0, 19.0, 20.7, 20.7, 500)])

    result = load_prices(url, [direct, again], "test", today=TODAY)

    assert (result.rows_inserted, result.rows_direct, result.rows_rejected) == (2, 2, 2)
    assert _rows(url, "select count(*) from raw.prices where symbol = 'BBB'") == [(0,)]
    rejected = _rows(
        url,
        "select row_data->>'close', row_data ? 'batch_id' from raw.rejected_prices "
        "where symbol = 'BBB' order by 1",
    )
    assert rejected == [("20.5", False), ("20.7", False)]


def test_ambiguous_and_iso_dates(make_database):
    url = make_database()
    rows = [
        ("AAA", "2024-01-02", 10, 11, 9, 10.5, 10.5, 100),
        ("AAA", "2024/01/03", 10, 11, 9, 10.5, 10.5, 100),
        ("AAA", "20240104", 10, 11, 9, 10.5, 10.5, 100),
        ("AAA", "2024-01-05 00:00:00-05:00", 10, 11, 9, 10.5, 10.5, 100),
        ("AAA", "01/08/2024", 10, 11, 9, 10.5, 10.5, 100),
        ("AAA", "2024-02-30", 10, 11, 9, 10.5, 10.5, 100),
        ("AAA", "2024-01-09 garbage", 10, 11, 9, 10.5, 10.5, 100),
        ("AAA", "2024-01/10", 10, 11, 9, 10.5, 10.5, 100),
    ]
    result = load_prices(url, [_frame(rows)], "test", today=TODAY)

    assert result.rows_inserted == 4
    loaded = [str(d) for (d,) in _rows(url, "select trade_date from raw.prices order by 1")]
    assert loaded == ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    rejected = _rows(
        url, "select row_data->>'trade_date', reason from raw.rejected_prices order by 1"
    )
    assert [r[0] for r in rejected] == [
        "01/08/2024",
        "2024-01-09 garbage",
        "2024-01/10",
        "2024-02-30",
    ]
    assert {r[1] for r in rejected} == {"unparseable trade_date (expected YYYY-MM-DD)"}


def test_known_extra_columns_are_kept_and_checked(make_database):
    url = make_database()
    frame = _frame(GOOD).assign(dividend=["0.25", "", None], split_factor=["", "2", "-1"])

    result = load_prices(url, [frame], "test", today=TODAY)

    assert result.rows_inserted == 2
    assert result.rejected_by_reason == {"split_factor out of range": 1}
    assert _rows(
        url, "select symbol, dividend, split_factor from raw.prices order by 1, trade_date"
    ) == [
        ("AAA", 0.25, None),
        ("AAA", None, 2.0),
    ]


def test_a_failed_unit_is_logged_and_the_others_load(make_database):
    from ingest.providers import FetchFailure

    url = make_database()
    items = [_frame(GOOD[:2]), FetchFailure("ZZZ", "HTTP 404"), _frame(GOOD[2:])]

    result = load_prices(url, items, "test", today=TODAY)

    assert result.rows_inserted == len(GOOD)
    assert result.failures == [{"unit": "ZZZ", "error": "HTTP 404"}]
    assert result.failed_share == 1 / 3
    assert _rows(url, "select units_failed, failures->0->>'unit' from raw.ingest_batches") == [
        (1, "ZZZ")
    ]


def test_absurd_volumes_are_rejected_not_wrapped(make_database):
    url = make_database()
    rows = [("AAA", "2024-01-02", 10, 11, 9, 10.5, 10.5, "1e30")]

    result = load_prices(url, [_frame(rows)], "test", today=TODAY)

    assert result.rejected_by_reason == {"volume must be < 1e+15": 1}
    assert _rows(url, "select count(*) from raw.prices") == [(0,)]


def test_failed_share_counts_named_units_not_symbols(make_database):
    from ingest.providers import FetchFailure

    url = make_database()
    long_file = _frame([(f"S{i:03d}", "2024-01-02", 10, 11, 9, 10.5, 10.5, 1) for i in range(50)])
    long_file.attrs["unit"] = "all.csv"

    result = load_prices(
        url, [long_file, FetchFailure("bad.csv", "no close column")], "csv", today=TODAY
    )

    assert len(result.symbols) == 50
    assert result.failed_share == 0.5


def test_symbol_spellings_are_one_symbol_for_the_duplicate_check():
    from ingest.validate import DUPLICATE, split_valid

    frame = _frame(
        [
            (" aapl ", "2024-01-02", 1.0, 2.0, 0.5, 1.5, 1.5, 10),
            ("AAPL", "2024-01-02", 1.0, 2.0, 0.5, 1.6, 1.6, 10),
            ("AAPL", "2024-01-03", 1.0, 2.0, 0.5, 1.6, 1.6, 10),
            ("  ", "2024-01-03", 1.0, 2.0, 0.5, 1.6, 1.6, 10),
            (None, "2024-01-03", 1.0, 2.0, 0.5, 1.6, 1.6, 10),
            ("msft", "1969-12-31", 1.0, 2.0, 0.5, 1.6, 1.6, 10),
        ]
    )
    valid, rejected = split_valid(frame, TODAY)

    assert valid[["symbol", "close"]].values.tolist() == [["AAPL", 1.6], ["MSFT", 1.6]]
    assert rejected["reason"].tolist() == [DUPLICATE, DUPLICATE, "missing symbol", "missing symbol"]
    assert rejected["symbol"].tolist()[:2] == [" aapl ", "AAPL"]  # as received
