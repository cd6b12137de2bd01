"""The dbt project against real PostgreSQL: a small known price history goes into raw.prices,
`marketflow.dbt.build` runs, and the marts are checked against an independent pandas
computation, for look-ahead, for the split and for the analyst role's privileges.

dbt builds are the slow part (a few seconds each): one shared build for most tests, one for
the look-ahead check, one that must fail, plus `dbt docs generate`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import psycopg2
import pytest

from marketflow.db import drop_database, init_database
from marketflow.dbt import DbtError, build, dbt_env, docs_generate, target_path
from marketflow.settings import with_database

N_DAYS = 60
SPLIT_DAY = 30  # AAA splits 2:1 at the open of this row: close halves, adj_close does not
DIVIDEND_DAY = 40  # BBB goes ex-dividend here: adj_close = 0.98 * close before it
FLAT_DAYS = 25  # CCC does not trade for its first 25 rows: constant price and volume
FEATURES = ["ret_1d", "ret_5d", "ret_20d", "vol_20d", "rsi_14", "volume_z_20d"]
HORIZONS = (1, 5)
TOLERANCE = 1e-9


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


def load_prices(url: str, prices: pd.DataFrame) -> None:
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
    numeric = [c for c in frame.columns if c not in ("symbol", "trade_date")]
    frame[numeric] = frame[numeric].astype(float)  # NULL -> NaN
    return frame


def read_features(url: str) -> pd.DataFrame:
    return read_table(url, "select * from marts.features_daily order by symbol, trade_date")


def read_labels(url: str) -> pd.DataFrame:
    return read_table(url, "select * from marts.labels_daily order by symbol, trade_date")


def _rolling(series: pd.Series, n: int, stat: Callable[[np.ndarray], float]) -> pd.Series:
    # Each window from scratch (no online updates): NaN unless all n values are present.
    return series.rolling(n, min_periods=n).apply(stat, raw=True)


def _volume_z(window: np.ndarray) -> float:
    mean, sd = window.mean(), window.std(ddof=1)
    return (window[-1] - mean) / sd if sd > 1e-12 * abs(mean) else np.nan


def expected_features(prices: pd.DataFrame) -> pd.DataFrame:
    """The documented feature formulas, in pandas, one symbol at a time."""
    frames = []
    for symbol, bars in prices.sort_values(["symbol", "trade_date"]).groupby("symbol"):
        adj = bars["adj_close"].reset_index(drop=True)
        adj_volume = bars["volume"].reset_index(drop=True) / (
            bars["adj_close"] / bars["close"]
        ).reset_index(drop=True)
        ret_1d = adj / adj.shift(1) - 1
        change = adj.diff()
        avg_gain = _rolling(change.clip(lower=0), 14, np.mean)
        avg_loss = _rolling((-change).clip(lower=0), 14, np.mean)
        movement = avg_gain + avg_loss
        rsi = (100 * avg_gain / movement).where(movement != 0, 50.0).where(movement.notna())
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "trade_date": bars["trade_date"].to_numpy(),
                    "adj_close": adj,
                    "history_days": np.arange(1, len(adj) + 1, dtype=float),
                    "ret_1d": ret_1d,
                    "ret_5d": adj / adj.shift(5) - 1,
                    "ret_20d": adj / adj.shift(20) - 1,
                    "vol_20d": _rolling(ret_1d, 20, lambda w: w.std(ddof=1)),
                    "rsi_14": rsi,
                    "volume_z_20d": _rolling(adj_volume, 20, _volume_z),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def expected_labels(prices: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for symbol, bars in prices.sort_values(["symbol", "trade_date"]).groupby("symbol"):
        adj = bars["adj_close"].reset_index(drop=True)
        frame = pd.DataFrame({"symbol": symbol, "trade_date": bars["trade_date"].to_numpy()})
        for h in HORIZONS:
            frame[f"fwd_ret_{h}d"] = adj.shift(-h) / adj - 1
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def assert_columns_close(actual: pd.DataFrame, expected: pd.DataFrame, columns: list[str]) -> None:
    assert list(actual[["symbol", "trade_date"]].itertuples(index=False)) == list(
        expected[["symbol", "trade_date"]].itertuples(index=False)
    )
    for column in columns:
        np.testing.assert_allclose(
            actual[column].to_numpy(),
            expected[column].to_numpy(),
            rtol=0,
            atol=TOLERANCE,
            equal_nan=True,
            err_msg=column,
        )


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return make_prices()


@pytest.fixture(scope="module")
def built_url(admin_url: str, database_url: str, prices: pd.DataFrame) -> Iterator[str]:
    """A database of its own (the session one is shared with other packages' tests), built once."""
    name = f"mf_test_{os.getpid()}_dbt_{uuid.uuid4().hex[:8]}"
    url = with_database(database_url, name)
    init_database(url, admin_url)
    try:
        load_prices(url, prices)
        build(url)
        yield url
    finally:
        drop_database(admin_url, name)


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
        ):
            cur.execute(f"select count(*), count(distinct symbol) from {relation}")
            counts[relation] = cur.fetchone()
    conn.close()
    assert set(counts.values()) == {(3 * N_DAYS, 3)}


def test_features_match_pandas(built_url: str, prices: pd.DataFrame) -> None:
    actual = read_features(built_url)
    expected = expected_features(prices)
    assert list(actual.columns) == list(expected.columns)
    assert_columns_close(actual, expected, ["adj_close", "history_days", *FEATURES])
    # The edge cases the data was built for are really exercised.
    flat = actual[(actual.symbol == "CCC") & (actual.history_days.between(20, FLAT_DAYS))]
    assert (flat.rsi_14 == 50).all() and (flat.vol_20d.fillna(0) == 0).all()
    assert flat.volume_z_20d.isna().all()
    assert actual.rsi_14.dropna().between(0, 100).all()
    assert actual.rsi_14.dropna().nunique() > 50 and actual.volume_z_20d.notna().sum() > 80


def test_windows_are_null_until_full(built_url: str) -> None:
    features = read_features(built_url).set_index(["symbol", "history_days"])
    first_full = {"ret_1d": 2, "ret_5d": 6, "ret_20d": 21, "vol_20d": 21, "rsi_14": 15}
    for column, days in first_full.items():
        for symbol in ("AAA", "BBB", "CCC"):
            values = features.loc[symbol][column]
            assert values.loc[: days - 1].isna().all(), (column, symbol)
            assert values.loc[days:].notna().all(), (column, symbol)
    assert features.loc["AAA"]["volume_z_20d"].loc[:19].isna().all()
    assert features.loc["AAA"]["volume_z_20d"].loc[20:].notna().all()


def test_labels_are_forward_returns_and_null_without_a_future(
    built_url: str, prices: pd.DataFrame
) -> None:
    actual = read_labels(built_url)
    assert list(actual.columns) == ["symbol", "trade_date", "fwd_ret_1d", "fwd_ret_5d"]
    assert_columns_close(actual, expected_labels(prices), ["fwd_ret_1d", "fwd_ret_5d"])
    for h in HORIZONS:
        for _, rows in actual.groupby("symbol"):
            label = rows[f"fwd_ret_{h}d"].to_numpy()
            assert np.isnan(label[-h:]).all() and not np.isnan(label[:-h]).any()


def test_split_is_not_a_crash(built_url: str, prices: pd.DataFrame) -> None:
    aaa = prices[prices.symbol == "AAA"].reset_index(drop=True)
    raw_move = aaa.close[SPLIT_DAY] / aaa.close[SPLIT_DAY - 1] - 1
    assert raw_move < -0.4  # the unadjusted close really halves

    features = read_features(built_url)
    split_row = features[(features.symbol == "AAA") & (features.history_days == SPLIT_DAY + 1)]
    assert abs(split_row.ret_1d.item()) < 0.1
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


def test_features_do_not_look_ahead(
    built_url: str, prices: pd.DataFrame, make_database: Callable[[], str]
) -> None:
    cutoffs = {"AAA": SPLIT_DAY - 1, "BBB": 44, "CCC": 10}
    rng = np.random.default_rng(11)
    changed = prices.copy()
    for symbol, cutoff in cutoffs.items():
        future = (changed.symbol == symbol) & (changed.groupby("symbol").cumcount() > cutoff)
        shock = 1 + rng.uniform(0.05, 0.3, future.sum()) * rng.choice([-1, 1], future.sum())
        for column in ("open", "high", "low", "close", "adj_close"):
            changed.loc[future, column] = np.round(changed.loc[future, column] * shock, 4)
        changed.loc[future, "volume"] = (changed.loc[future, "volume"] * shock * 1.7).astype(
            np.int64
        )
    url = make_database()
    load_prices(url, changed)
    build(url)

    before, after = read_features(built_url), read_features(url)
    labels_before, labels_after = read_labels(built_url), read_labels(url)
    for symbol, cutoff in cutoffs.items():
        cutoff_date = prices[prices.symbol == symbol].trade_date.iloc[cutoff]
        known = (before.symbol == symbol) & (before.trade_date <= cutoff_date)
        pd.testing.assert_frame_equal(
            before[known].reset_index(drop=True), after[known].reset_index(drop=True)
        )
        # The change is visible from t+1 on, and in the labels of t (they look ahead by design).
        next_day = (before.symbol == symbol) & (before.history_days == cutoff + 2)
        assert before[next_day].ret_1d.item() != after[next_day].ret_1d.item()
        at_cutoff = (labels_before.symbol == symbol) & (labels_before.trade_date == cutoff_date)
        label_before, label_after = (
            labels[at_cutoff].fwd_ret_1d.item() for labels in (labels_before, labels_after)
        )
        assert label_before != label_after


def test_analyst_reads_marts_but_cannot_write(built_url: str) -> None:
    parts = urlsplit(built_url)
    host = parts.netloc.rpartition("@")[2]
    analyst_url = parts._replace(netloc=f"marketflow_analyst@{host}").geturl()
    conn = psycopg2.connect(analyst_url)
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from marts.features_daily")
            assert cur.fetchone()[0] == 3 * N_DAYS
            cur.execute("select count(*) from marts.labels_daily")
            assert cur.fetchone()[0] == 3 * N_DAYS
        conn.rollback()
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(
                "insert into marts.features_daily (symbol, trade_date) values ('ZZZ', '2024-01-01')"
            )
        conn.rollback()
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("select count(*) from raw.prices")
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
    load_prices(url, bad)
    with pytest.raises(DbtError) as failure:
        build(url)
    message = str(failure.value)
    assert "dbt build failed" in message
    assert "accepted_range_stg_market__prices_adj_close_price" in message
    assert dict(os.environ) == environ_before  # restored, pre-existing values included

    with pytest.raises(DbtError, match="no_such_model"):
        build(url, select="no_such_model")  # a typo must not pass as "nothing to do"


def test_docs_describe_every_mart_column(built_url: str) -> None:
    docs_generate(built_url)
    target = target_path()
    catalog = json.loads((target / "catalog.json").read_text())
    manifest = json.loads((target / "manifest.json").read_text())
    for model in ("features_daily", "labels_daily"):
        unique_id = f"model.marketflow.{model}"
        db_columns = set(catalog["nodes"][unique_id]["columns"])
        documented = {
            name
            for name, column in manifest["nodes"][unique_id]["columns"].items()
            if column.get("description", "").strip()
        }
        assert db_columns and db_columns == documented, model
        assert catalog["nodes"][unique_id]["metadata"]["schema"] == "marts"
