"""The dbt project against real PostgreSQL.

- On the real sample data (12k bars, 5 symbols, 2000-2013): every column of features_daily
  and labels_daily equals the plain-pandas reference in tests/dbt/reference.py (relative
  tolerance 1e-9, plus an absolute 1e-12 floor for values that are zero up to rounding),
  with NULLs in the same places.
- Incremental: the sample data loaded in two batches and built twice (the second run an
  incremental one) gives exactly the same tables as one full build; the first build, which
  knew nothing of the later days, already had the same feature values (no look-ahead); a
  corrected bar in the past is picked up by the next incremental run.
- On a small hand-made history: splits, dividends, a flat start, the analyst role's
  privileges, a failing data test, the documentation.

dbt builds are the slow part (a few seconds each), so each database is built as few times
as the checks allow.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import psycopg2
import pytest

from core.db import drop_database, init_database
from core.dbt import DbtError, build, dbt_env, docs_generate, run_dbt, target_path
from core.urls import database_name, with_database
from ingest.loader import load_prices as ingest_prices
from ingest.providers.sample import SampleProvider
from tests.dbt.reference import LABEL_HORIZONS, expected_features, expected_labels
from tests.helpers import query

RTOL, ATOL = 1e-9, 1e-12
METADATA = {"symbol", "trade_date", "adj_close", "history_days", "close_price"}
METADATA |= {"dollar_volume_20d", "source_ingested_at"}
SAMPLE_CUTOFF = date(2013, 1, 15)  # the incremental database gets the rest in a second batch

N_DAYS = 120
SPLIT_DAY = 90  # AAA splits 2:1 at the open of this row: close halves, adj_close does not
DIVIDEND_DAY = 100  # BBB goes ex-dividend here: adj_close = 0.98 * close before it
FLAT_DAYS = 25  # CCC does not trade for its first 25 rows: constant price and volume


# --- data and helpers ---------------------------------------------------------------------


def make_prices(seed: int = 7) -> pd.DataFrame:
    """Deterministic daily bars for AAA (2:1 split), BBB (dividend) and CCC (flat start)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-02", periods=N_DAYS).date
    frames = []
    for symbol, start in (("AAA", 180.0), ("BBB", 50.0), ("CCC", 20.0)):
        adj_close = np.round(start * np.cumprod(1 + rng.normal(0, 0.02, N_DAYS)), 4)
        volume = rng.integers(1_000_000, 3_000_000, N_DAYS)
        factor = np.ones(N_DAYS)
        if symbol == "AAA":
            factor[:SPLIT_DAY] = 0.5
            volume[:SPLIT_DAY] //= 2  # half as many (pre-split) shares changed hands
        elif symbol == "BBB":
            factor[:DIVIDEND_DAY] = 0.98
        else:
            adj_close[:FLAT_DAYS] = start
            volume[:FLAT_DAYS] = 1_500_000
        close = np.round(adj_close / factor, 4)
        open_ = np.round(close * (1 + rng.normal(0, 0.005, N_DAYS)), 4)
        if symbol == "CCC":
            open_[:FLAT_DAYS] = start
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "trade_date": dates,
                    "open": open_,
                    "high": np.round(np.maximum(open_, close) * 1.01, 4),
                    "low": np.round(np.minimum(open_, close) * 0.99, 4),
                    "close": close,
                    "adj_close": adj_close,
                    "volume": volume.astype(np.int64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def insert_prices(url: str, prices: pd.DataFrame) -> None:
    batch_id = str(uuid.uuid4())
    rows = [
        (r.symbol, r.trade_date, r.open, r.high, r.low, r.close, r.adj_close, int(r.volume))
        for r in prices.itertuples(index=False)
    ]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(
            "insert into raw.prices (symbol, trade_date, open, high, low, close, adj_close,"
            " volume, provider, batch_id) values (%s, %s, %s, %s, %s, %s, %s, %s, 'test', %s)",
            [(*row, batch_id) for row in rows],
        )
    conn.close()


def read_table(url: str, query: str) -> pd.DataFrame:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        columns = [c.name for c in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=columns)
    conn.close()
    numeric = [
        column
        for column in frame.columns
        if all(isinstance(v, int | float | Decimal) for v in frame[column].dropna())
        and not frame[column].map(lambda v: isinstance(v, bool)).any()
    ]
    frame[numeric] = frame[numeric].astype(float)  # NULL -> NaN
    return frame


def read_features(url: str) -> pd.DataFrame:
    return read_table(url, "select * from marts.features_daily order by symbol, trade_date")


def read_labels(url: str) -> pd.DataFrame:
    return read_table(url, "select * from marts.labels_daily order by symbol, trade_date")


def read_raw(url: str) -> pd.DataFrame:
    return read_table(
        url,
        "select symbol, trade_date, open, high, low, close, adj_close, volume"
        " from raw.prices order by symbol, trade_date",
    )


def assert_matches_reference(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    keys = ["symbol", "trade_date"]
    assert actual[keys].equals(expected[keys])
    mismatched = []
    for column in expected.columns.drop(keys):
        got, want = actual[column].to_numpy(float), expected[column].to_numpy(float)
        if not np.array_equal(np.isnan(got), np.isnan(want)):
            mismatched.append(
                f"{column}: NULLs differ in {(np.isnan(got) != np.isnan(want)).sum()} rows"
            )
        elif not np.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True):
            mismatched.append(f"{column}: values differ")
    assert not mismatched, mismatched


def new_database(admin_url: str, database_url: str, label: str) -> str:
    name = f"mf_test_{os.getpid()}_{label}_{uuid.uuid4().hex[:6]}"
    url = with_database(database_url, name)
    init_database(url, admin_url)
    return url


def load_sample(url: str, start: date | None = None, end: date | None = None) -> None:
    ingest_prices(url, SampleProvider().fetch(start=start, end=end), "sample")


# --- the real sample data: reference, incremental, universe --------------------------------


@pytest.fixture(scope="module")
def sample_url(admin_url: str, database_url: str) -> Iterator[str]:
    """The whole sample data in one batch and one full build."""
    url = new_database(admin_url, database_url, "sample")
    try:
        load_sample(url)
        build(url)
        yield url
    finally:
        drop_database(admin_url, database_name(url))


@pytest.fixture(scope="module")
def incremental_url(admin_url: str, database_url: str) -> Iterator[str]:
    url = new_database(admin_url, database_url, "incr")
    try:
        yield url
    finally:
        drop_database(admin_url, database_name(url))


def test_features_match_the_pandas_reference_on_the_sample_data(sample_url: str) -> None:
    actual = read_features(sample_url)
    expected = expected_features(read_raw(sample_url))
    assert set(actual.columns) - set(expected.columns) == {"source_ingested_at"}
    assert_matches_reference(actual, expected)

    features = [c for c in expected.columns if c not in METADATA]
    assert len(features) >= 60
    warm = actual[actual.history_days >= 80]
    # The real data exercises the formulas: nearly every feature is set after the warm-up.
    assert (warm[features].isna().mean() < 0.01).all(), warm[features].isna().mean().nlargest(3)
    assert actual.rsi_14.dropna().between(0, 100).all()


def test_labels_match_the_reference_and_are_null_without_a_future(sample_url: str) -> None:
    actual = read_labels(sample_url)
    assert list(actual.columns) == [
        "symbol",
        "trade_date",
        *LABEL_HORIZONS,
        "source_ingested_at",
    ]
    assert_matches_reference(
        actual.drop(columns="source_ingested_at"), expected_labels(read_raw(sample_url))
    )
    for label, horizon in LABEL_HORIZONS.items():
        for _, rows in actual.groupby("symbol"):
            values = rows[label].to_numpy()
            assert np.isnan(values[-horizon:]).all() and not np.isnan(values[:-horizon]).any()


def test_label_catalog_records_each_horizon(sample_url: str) -> None:
    rows = read_table(sample_url, "select label, horizon_days from marts.label_catalog")
    assert dict(zip(rows.label, rows.horizon_days, strict=True)) == LABEL_HORIZONS
    key = read_table(
        sample_url,
        "select count(*) as n from pg_constraint"
        " where conrelid = 'marts.label_catalog'::regclass and contype = 'p'",
    )
    assert key.n.item() == 1


def test_incremental_run_equals_full_refresh_and_never_looked_ahead(
    sample_url: str, incremental_url: str
) -> None:
    load_sample(incremental_url, end=SAMPLE_CUTOFF)
    build(incremental_url)
    before = read_features(incremental_url).drop(columns="source_ingested_at")

    load_sample(incremental_url, start=SAMPLE_CUTOFF + timedelta(days=1))
    build(incremental_url)  # incremental: the tables exist and have the same columns

    full = read_features(sample_url).drop(columns="source_ingested_at")
    after = read_features(incremental_url).drop(columns="source_ingested_at")
    pd.testing.assert_frame_equal(after, full, check_exact=True)
    labels = read_labels(incremental_url).drop(columns="source_ingested_at")
    full_labels = read_labels(sample_url).drop(columns="source_ingested_at")
    pd.testing.assert_frame_equal(labels, full_labels, check_exact=True)

    # Built without the later days, every earlier feature was already final.
    known = full[full.trade_date <= SAMPLE_CUTOFF].reset_index(drop=True)
    pd.testing.assert_frame_equal(before, known, check_exact=True)


def test_incremental_run_picks_up_a_corrected_bar(incremental_url: str) -> None:
    """Runs after the test above: ingest corrects one bar in the past (a new batch bumps its
    ingested_at); the next incremental run rebuilds from that day for every symbol."""
    day = date(2012, 11, 1)
    with psycopg2.connect(incremental_url) as conn, conn.cursor() as cur:
        cur.execute(
            "update raw.prices set close = close * 1.05, adj_close = adj_close * 1.05,"
            " high = high * 1.05, ingested_at = now() where symbol = 'IBM' and trade_date = %s",
            (day,),
        )
        assert cur.rowcount == 1
    conn.close()
    build(incremental_url)

    actual = read_features(incremental_url)
    assert_matches_reference(actual, expected_features(read_raw(incremental_url)))
    labels = read_labels(incremental_url).drop(columns="source_ingested_at")
    assert_matches_reference(labels, expected_labels(read_raw(incremental_url)))


def test_universe_has_one_row_per_feature_row_with_a_reason(sample_url: str) -> None:
    universe = read_table(
        sample_url,
        "select u.*, f.history_days from marts.universe_daily u"
        " join marts.features_daily f using (symbol, trade_date) order by symbol, trade_date",
    )
    assert len(universe) == len(read_features(sample_url))
    young = universe.history_days < 80
    assert (universe[young].reason == "insufficient_history").all()
    assert not universe[young].in_universe.any()
    # The five sample stocks are liquid and far above $1: everything else is eligible.
    assert (universe[~young].reason == "eligible").all() and universe[~young].in_universe.all()


def test_universe_applies_point_in_time_membership(sample_url: str) -> None:
    conn = psycopg2.connect(sample_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "insert into reference.index_membership (symbol, valid_from, valid_to) values"
                " ('AAPL', '2005-01-03', '2008-12-31'), ('AAPL', '2010-01-04', null),"
                " ('IBM', '2000-01-03', null)"
            )
            cur.execute(
                "select symbol, trade_date, in_universe, reason from marts.universe_daily"
                " where trade_date in ('2004-06-01', '2006-06-01', '2009-06-01', '2012-06-01')"
                " order by symbol, trade_date"
            )
            rows = {(s, d.isoformat()): (flag, reason) for s, d, flag, reason in cur.fetchall()}
    finally:
        conn.rollback()  # the membership rows were only for this test
        conn.close()
    assert rows[("AAPL", "2004-06-01")] == (False, "not_index_member")
    assert rows[("AAPL", "2006-06-01")] == (True, "eligible")
    assert rows[("AAPL", "2009-06-01")] == (False, "not_index_member")
    assert rows[("AAPL", "2012-06-01")] == (True, "eligible")
    assert rows[("IBM", "2006-06-01")] == (True, "eligible")
    assert rows[("MSFT", "2006-06-01")] == (False, "not_index_member")
    assert rows[("FB", "2012-06-01")] == (False, "insufficient_history")  # IPO in May 2012


# --- a small hand-made history: edge cases, privileges, failures, docs --------------------


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return make_prices()


@pytest.fixture(scope="module")
def built_url(admin_url: str, database_url: str, prices: pd.DataFrame) -> Iterator[str]:
    url = new_database(admin_url, database_url, "dbt")
    try:
        insert_prices(url, prices)
        build(url)
        yield url
    finally:
        drop_database(admin_url, database_name(url))


def test_dbt_env_maps_url_onto_profile_variables() -> None:
    env = dbt_env("postgresql://mf%40user:p%2Fss@db.example:6543/mf_data")
    assert env == {
        "MARKETFLOW_DBT_HOST": "db.example",
        "MARKETFLOW_DBT_PORT": "6543",
        "MARKETFLOW_DBT_USER": "mf@user",
        "MARKETFLOW_DBT_PASSWORD": "p/ss",
        "MARKETFLOW_DBT_DBNAME": "mf_data",
    }
    assert dbt_env("postgresql:///mf_data")["MARKETFLOW_DBT_HOST"] == "127.0.0.1"
    with pytest.raises(ValueError):
        dbt_env("mysql://root@localhost/mf")


def test_models_land_in_their_schemas_with_one_row_per_bar(built_url: str) -> None:
    with psycopg2.connect(built_url) as conn, conn.cursor() as cur:
        counts = {}
        for relation in (
            "staging.stg_market__prices",
            "intermediate.int_prices_adjusted",
            "marts.features_daily",
            "marts.labels_daily",
            "marts.universe_daily",
        ):
            cur.execute(f"select count(*), count(distinct symbol) from {relation}")
            counts[relation] = cur.fetchone()
    conn.close()
    assert set(counts.values()) == {(3 * N_DAYS, 3)}


def test_marts_keys_are_primary_keys_and_the_window_families_leave_no_relation(
    built_url: str,
) -> None:
    keys = query(
        built_url,
        "select c.conrelid::regclass::text, array_agg(a.attname::text order by a.attnum)"
        " from pg_constraint as c join pg_attribute as a"
        " on a.attrelid = c.conrelid and a.attnum = any(c.conkey)"
        " where c.contype = 'p' and c.connamespace = 'marts'::regnamespace group by 1",
    )
    assert dict(keys) == {
        "marts.features_daily": ["symbol", "trade_date"],
        "marts.labels_daily": ["symbol", "trade_date"],
        "marts.label_catalog": ["label"],
    }
    # Ephemeral: compiled into features_daily's query, never built on their own.
    families = query(
        built_url,
        "select count(*) from pg_class where relname like 'int\\_prices\\_%'"
        " and relname <> 'int_prices_adjusted'",
    )
    assert families == [(0,)]


def test_only_staging_reads_sources_and_every_model_tests_its_key(built_url: str) -> None:
    run_dbt(["parse"], built_url)  # this project's manifest
    nodes = json.loads((target_path() / "manifest.json").read_text())["nodes"]
    models = {uid: n for uid, n in nodes.items() if n["resource_type"] in ("model", "seed")}
    unique_tested = {
        n["attached_node"]
        for n in nodes.values()
        if n.get("test_metadata", {}).get("name") == "unique"
    }
    for uid, model in models.items():
        if any(parent.startswith("source.") for parent in model["depends_on"].get("nodes", [])):
            assert model["fqn"][1] == "staging" and model["name"].startswith("stg_"), uid
        primary_key = any(c["type"] == "primary_key" for c in model.get("constraints", []))
        if model["config"]["materialized"] == "ephemeral":
            # No table to test: documented, and tested through features_daily's primary key
            # and assert_features_and_labels_share_keys (models/intermediate/features/).
            assert "Key: (symbol, trade_date)" in model["description"], uid
        else:
            assert primary_key or uid in unique_tested, uid


def test_edge_cases_match_the_reference(built_url: str, prices: pd.DataFrame) -> None:
    actual = read_features(built_url)
    assert_matches_reference(actual, expected_features(read_raw(built_url)))
    flat = actual[(actual.symbol == "CCC") & (actual.history_days.between(20, FLAT_DAYS))]
    assert (flat.rsi_14 == 50).all() and (flat.vol_20d.fillna(0) == 0).all()
    assert flat.volume_z_20d.isna().all() and flat.rsqr_20d.isna().all()
    assert flat.corr_20d.isna().all() and (flat.imax_20d == 0).all()
    assert (flat.rank_20d == (20 + 1) / 2 / 20).all()  # all tied: the average rank


def test_a_table_with_other_columns_is_rebuilt_in_full(built_url: str) -> None:
    """A release that adds features meets tables built by the previous one: the incremental
    run must rebuild them (macros/drop_tables_off_contract.sql), not fail or leave NULL columns;
    the view over the table, dropped with it, comes back in the same build."""
    with psycopg2.connect(built_url) as conn, conn.cursor() as cur:
        cur.execute("alter table marts.features_daily drop column macd_hist")
        cur.execute("delete from marts.features_daily where history_days > 100")
    conn.close()
    build(built_url)
    assert_matches_reference(read_features(built_url), expected_features(read_raw(built_url)))
    assert query(built_url, "select count(*) from marts.universe_daily") == [(3 * N_DAYS,)]


def test_windows_are_null_until_full(built_url: str) -> None:
    features = read_features(built_url).set_index(["symbol", "history_days"])
    first_full = {"ret_1d": 2, "ret_5d": 6, "ret_20d": 21, "vol_20d": 21, "rsi_14": 15}
    first_full |= {"roc_60d": 61, "ma_60d": 60, "cntp_60d": 61, "wvma_5d": 6}
    first_full |= {"macd_12_26": 60, "macd_signal_9": 79, "atr_14": 15, "qtlu_30d": 30}
    for column, days in first_full.items():
        for symbol in ("AAA", "BBB"):
            values = features.loc[symbol][column]
            assert values.loc[: days - 1].isna().all(), (column, symbol)
            assert values.loc[days:].notna().all(), (column, symbol)


def test_split_is_not_a_crash(built_url: str, prices: pd.DataFrame) -> None:
    aaa = prices[prices.symbol == "AAA"].reset_index(drop=True)
    raw_move = aaa.close[SPLIT_DAY] / aaa.close[SPLIT_DAY - 1] - 1
    assert raw_move < -0.4  # the unadjusted close really halves

    features = read_features(built_url)
    split_row = features[(features.symbol == "AAA") & (features.history_days == SPLIT_DAY + 1)]
    assert abs(split_row.ret_1d.item()) < 0.1
    assert abs(split_row.kmid.item()) < 0.05 and abs(split_row.vma_5d.item() - 1) < 1
    assert features.ret_1d.abs().max() < 0.15

    with psycopg2.connect(built_url) as conn, conn.cursor() as cur:
        cur.execute(
            "select adj_open, adj_high, adj_low, adj_close, adj_volume, volume"
            " from intermediate.int_prices_adjusted"
            " where symbol = 'AAA' and trade_date in (%s, %s) order by trade_date",
            (aaa.trade_date[SPLIT_DAY - 1], aaa.trade_date[SPLIT_DAY]),
        )
        before, after = cur.fetchall()
    conn.close()
    assert before[1] >= before[3] >= before[2] and abs(after[0] / before[3] - 1) < 0.1
    assert before[4] == pytest.approx(2 * before[5], rel=1e-12)  # in today's shares
    assert after[4] == pytest.approx(after[5], rel=1e-12)


def test_analyst_reads_marts_only(built_url: str) -> None:
    parts = urlsplit(built_url)
    host = parts.netloc.rpartition("@")[2]
    analyst_url = parts._replace(netloc=f"marketflow_analyst@{host}").geturl()
    conn = psycopg2.connect(analyst_url)
    try:
        with conn.cursor() as cur:
            for relation in ("features_daily", "labels_daily", "universe_daily"):
                cur.execute(f"select count(*) from marts.{relation}")
                assert cur.fetchone()[0] == 3 * N_DAYS
            cur.execute("select count(*) from marts.label_catalog")
            assert cur.fetchone()[0] == len(LABEL_HORIZONS)
        conn.rollback()
        refused = [
            "insert into marts.features_daily (symbol, trade_date) values ('ZZZ', '2024-01-01')",
            "update marts.labels_daily set fwd_ret_1d = 0",
            "delete from marts.label_catalog",
            "create table marts.mine (x int)",
            "select count(*) from raw.prices",
            "select count(*) from intermediate.int_prices_adjusted",
            "select count(*) from staging.stg_market__prices",
            "select count(*) from reference.index_membership",
        ]
        for statement in refused:
            with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
            conn.rollback()
    finally:
        conn.close()


def test_failed_data_test_raises_dbt_error(
    make_database: Callable[[], str], prices: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_database()
    monkeypatch.setenv("MARKETFLOW_DBT_DBNAME", "not_this_one")
    environ_before = dict(os.environ)
    bad = prices[prices.symbol == "BBB"].head(3).copy()
    bad.loc[bad.index[1], "adj_close"] = -1.0
    insert_prices(url, bad)
    with pytest.raises(DbtError) as failure:
        build(url)
    message = str(failure.value)
    assert "dbt build failed" in message
    assert "accepted_range_stg_market__prices_adj_close_price" in message
    assert dict(os.environ) == environ_before  # restored, pre-existing values included

    with pytest.raises(DbtError, match="no_such_model"):
        build(url, select="no_such_model")  # a typo must not pass as "nothing to do"


def rebuilds(url: str) -> list[tuple]:
    """monitoring.dbt_rebuilds of features_daily, oldest first: (rebuilt_from, tests_passed)."""
    return query(
        url,
        "select rebuilt_from, tests_passed from monitoring.dbt_rebuilds"
        " where model_name = 'features_daily' order by started_at",
    )


def execute(url: str, statement: str, *params: object) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        count = cur.rowcount
    conn.close()
    return count


def test_data_tests_check_each_rebuild_until_it_passes(
    make_database: Callable[[], str], prices: pd.DataFrame
) -> None:
    """Data tests on an incremental mart read only the rows rebuilt since the last passing
    run (macros/rebuild_log.sql); a failure keeps those rows in scope until a run passes."""
    url = make_database()
    days = sorted(prices.trade_date.unique())
    insert_prices(url, prices[prices.trade_date < days[100]])
    build(url)  # first build: the whole table, tested and verified
    assert rebuilds(url) == [(None, True)]

    # A day's rebuild is tested on its own rows: the compiled test reads the rebuild log when
    # it runs, so a bad row the day before the rebuilt one goes unseen.
    good_rsi = query(
        url,
        f"select rsi_14 from marts.features_daily where trade_date = '{days[99]}'"
        " and symbol = 'AAA'",
    )[0][0]
    assert execute(url, "update marts.features_daily set rsi_14 = 150 where trade_date = %s"
                   " and symbol = 'AAA'", days[99]) == 1  # fmt: skip
    insert_prices(url, prices[prices.trade_date == days[100]])
    build(url)
    assert rebuilds(url)[-1] == (days[100], True)
    compiled = next(target_path().glob("run/marketflow/**/not_null_features_daily_adj_close.sql"))
    assert "from monitoring.dbt_rebuilds" in compiled.read_text()
    execute(url, "update marts.features_daily set rsi_14 = %s where trade_date = %s"
            " and symbol = 'AAA'", good_rsi, days[99])  # fmt: skip

    # Built without tests (`dbt run`), then a rebuilt row goes bad: the next build checks it,
    # although it rebuilds nothing, and fails; the rows stay unverified until a run passes.
    insert_prices(url, prices[(prices.trade_date > days[100]) & (prices.trade_date <= days[105])])
    run_dbt(["run"], url)
    assert rebuilds(url)[-1] == (days[101], None)
    bad_day = days[103]
    assert execute(url, "update marts.features_daily set rsi_14 = 150 where trade_date = %s"
                   " and symbol = 'AAA'", bad_day) == 1  # fmt: skip
    with pytest.raises(DbtError, match="accepted_range_features_daily_rsi_14"):
        build(url)
    assert [passed for _, passed in rebuilds(url)[-2:]] == [None, None]
    assert rebuilds(url)[-1][0] == date.max or str(rebuilds(url)[-1][0]) == "infinity"

    execute(url, "update marts.features_daily set rsi_14 = 50 where trade_date = %s"
            " and symbol = 'AAA'", bad_day)  # fmt: skip
    build(url)
    assert all(passed for _, passed in rebuilds(url))

    # Rows a passing run has verified are not read again by incremental runs; the whole
    # table is, by `dbt test` with no unverified rebuild, or on request.
    old_day = days[50]
    execute(url, "update marts.features_daily set rsi_14 = 150 where trade_date = %s"
            " and symbol = 'AAA'", old_day)  # fmt: skip
    insert_prices(url, prices[prices.trade_date == days[106]])
    build(url)
    with pytest.raises(DbtError, match="accepted_range_features_daily_rsi_14"):
        run_dbt(["test", "--select", "features_daily"], url)
    with pytest.raises(DbtError, match="accepted_range_features_daily_rsi_14"):
        run_dbt(["build", "--vars", '{"full_data_tests": true}'], url)


def test_docs_are_the_feature_catalogue(built_url: str) -> None:
    docs_generate(built_url)
    target = target_path()
    catalog = json.loads((target / "catalog.json").read_text())
    manifest = json.loads((target / "manifest.json").read_text())
    assert (target / "index.html").exists()
    for model in ("features_daily", "labels_daily", "universe_daily"):
        unique_id = f"model.marketflow.{model}"
        db_columns = set(catalog["nodes"][unique_id]["columns"])
        documented = {
            name
            for name, column in manifest["nodes"][unique_id]["columns"].items()
            if column.get("description", "").strip()
        }
        assert db_columns and db_columns == documented, model
        assert catalog["nodes"][unique_id]["metadata"]["schema"] == "marts"

    columns = manifest["nodes"]["model.marketflow.features_daily"]["columns"]
    not_features = {name for name, c in columns.items() if c["meta"].get("feature") is False}
    assert not_features == METADATA
    features = set(columns) - not_features
    assert len(features) >= 60
    for name in features:  # formula, unit and window are in every feature's description
        assert "Unit:" in columns[name]["description"], name
    windowed = {name for name in features if "first_history_days" in columns[name]["meta"]}
    assert len(windowed) == len(features) - 5  # all but the five cross-sectional ranks
