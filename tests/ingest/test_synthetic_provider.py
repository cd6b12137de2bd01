"""The synthetic provider: deterministic, valid bars, splits with continuous adj_close, gaps."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import psycopg2
import pytest

from ingest.loader import load_prices
from ingest.providers import CHUNK_ROWS, get_provider
from ingest.providers.synthetic import SyntheticProvider
from ingest.schema import PRICE_COLUMNS

TODAY = date(2025, 1, 31)


def _all(provider: SyntheticProvider, *args: object) -> pd.DataFrame:
    frames = list(provider.fetch(*args))  # type: ignore[arg-type]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    """30 symbols over 10 years with splits frequent enough to see several."""
    provider = SyntheticProvider(n_symbols=30, seed=7, split_prob=0.002, gap_prob=0.005)
    return _all(provider).sort_values(["symbol", "trade_date"], ignore_index=True)


def test_registered_and_named():
    provider = get_provider("synthetic", n_symbols=3)
    assert isinstance(provider, SyntheticProvider)
    assert provider.available_symbols() == ["SYN0000", "SYN0001", "SYN0002"]


def test_same_arguments_give_identical_frames():
    a = list(SyntheticProvider(n_symbols=5, seed=3).fetch())
    b = list(SyntheticProvider(n_symbols=5, seed=3).fetch())
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y)
    other_seed = _all(SyntheticProvider(n_symbols=5, seed=4))
    assert not np.allclose(other_seed["close"][:100], pd.concat(a)["close"][:100])


def test_subset_and_date_range_give_the_same_rows_as_the_full_set():
    provider = SyntheticProvider(n_symbols=12, seed=11)
    full = _all(provider).set_index(["symbol", "trade_date"])
    start, end = date(2018, 3, 5), date(2019, 7, 1)
    subset = _all(provider, ["SYN0009", "SYN0002"], start, end).set_index(["symbol", "trade_date"])

    assert set(subset.index.get_level_values("symbol")) == {"SYN0009", "SYN0002"}
    dates = subset.index.get_level_values("trade_date")
    assert min(dates) >= start and max(dates) <= end
    pd.testing.assert_frame_equal(subset, full.loc[subset.index])
    in_range = full.loc[["SYN0002", "SYN0009"]]
    in_range = in_range[[start <= d <= end for d in in_range.index.get_level_values(1)]]
    assert len(subset) == len(in_range)


def test_unknown_symbol_is_an_error():
    with pytest.raises(ValueError, match="SYN0005"):
        list(SyntheticProvider(n_symbols=5).fetch(["SYN0001", "SYN0005"]))


def test_frames_are_bounded_and_have_the_price_columns():
    provider = SyntheticProvider(n_symbols=60)  # ~156k rows: more than one chunk
    frames = list(provider.fetch())
    assert len(frames) > 1
    assert all(len(f) <= CHUNK_ROWS for f in frames)
    assert all(list(f.columns) == [*PRICE_COLUMNS, "split_factor"] for f in frames)
    keys = pd.concat([f[["symbol", "trade_date"]] for f in frames])
    assert not keys.duplicated().any()


def test_bars_are_consistent(market: pd.DataFrame):
    prices = market[["open", "high", "low", "close", "adj_close"]]
    assert (prices > 0).all().all()
    assert (market["low"] <= np.minimum(market["open"], market["close"])).all()
    assert (np.maximum(market["open"], market["close"]) <= market["high"]).all()
    assert (market["volume"] >= 0).all()
    assert all(isinstance(d, date) for d in market["trade_date"].head())
    days = pd.to_datetime(market["trade_date"])
    assert (days.dt.dayofweek < 5).all()


def test_no_absurd_days_at_benchmark_scale():
    """2,000 symbols x 10 years, the benchmark's data: every bar stays within reason."""
    rows = 0
    for frame in SyntheticProvider(n_symbols=2000).fetch():
        rows += len(frame)
        day_move = np.abs(np.log(frame["close"] / frame["open"]))
        assert day_move.max() < 0.5
        assert (frame["high"] / frame["low"]).max() < 2.0
        assert frame["volume"].between(1, 1e12).all()
        assert (frame["low"] > 0).all()
    assert rows > 5_000_000


def test_returns_look_like_daily_equity_returns(market: pd.DataFrame):
    log_ret = np.log(market["adj_close"]).groupby(market["symbol"]).diff().dropna()
    assert 0.01 < log_ret.std() < 0.035
    assert log_ret.kurt() > 1.0  # fatter tails than normal
    same_symbol = market["symbol"].eq(market["symbol"].shift())
    prev_close = market["close"].shift()[same_symbol]
    no_split = market["split_factor"].isna()[same_symbol]
    overnight = np.log(market["open"][same_symbol] / prev_close)[no_split]
    assert np.median(np.abs(overnight)) < 0.01  # open near the previous close
    abs_ret = log_ret.abs()
    log_volume = np.log(market.loc[abs_ret.index, "volume"])
    by_symbol = pd.DataFrame(
        {"r": abs_ret, "v": log_volume, "s": market.loc[abs_ret.index, "symbol"]}
    )
    corr = pd.Series([g["r"].corr(g["v"]) for _, g in by_symbol.groupby("s")])
    assert corr.median() > 0.1  # busier on big moves


def test_splits_cut_raw_prices_but_adj_close_stays_continuous(market: pd.DataFrame):
    split_days = market.index[market["split_factor"].notna()]
    assert len(split_days) >= 5
    assert set(market.loc[split_days, "split_factor"]) <= {2.0, 3.0}
    for i in split_days:
        before, day = market.loc[i - 1], market.loc[i]
        assert before["symbol"] == day["symbol"]
        factor = day["split_factor"]
        raw_move = day["close"] / before["close"]
        adj_move = day["adj_close"] / before["adj_close"]
        assert raw_move < 0.75  # the raw price drops by about the factor
        assert abs(np.log(adj_move)) < 0.25  # the adjusted series does not
        assert raw_move * factor == pytest.approx(adj_move, rel=1e-3)
        assert day["volume"] > 0

    # adj_close / close is constant between splits and 1 after a symbol's last split.
    ratio = market["adj_close"] / market["close"]
    era = market["split_factor"].notna().groupby(market["symbol"]).cumsum()
    era_ratio = ratio.groupby([market["symbol"], era]).transform("median")
    priced = market["close"] > 0.1  # below that, rounding to 4 decimals blurs the ratio
    assert ((ratio / era_ratio - 1).abs()[priced] < 1e-3).all()
    last = market.groupby("symbol").tail(1)
    assert np.allclose(last["adj_close"], last["close"], rtol=1e-4)


def test_gaps_are_missing_rows_and_row_count_matches():
    n_symbols, gap_prob = 40, 0.01
    provider = SyntheticProvider(n_symbols=n_symbols, gap_prob=gap_prob, split_prob=0.0)
    rows = _all(provider)
    bdays = len(pd.bdate_range(date(2015, 1, 1), date(2024, 12, 31)))
    expected = n_symbols * bdays * (1 - gap_prob)
    assert len(rows) < n_symbols * bdays
    assert abs(len(rows) - expected) < 4 * np.sqrt(n_symbols * bdays * gap_prob)
    per_symbol = rows.groupby("symbol").size()
    assert (per_symbol < bdays).sum() > n_symbols // 2


def test_default_row_count():
    rows = _all(SyntheticProvider())
    bdays = len(pd.bdate_range(date(2015, 1, 1), date(2024, 12, 31)))
    assert len(rows) == pytest.approx(20 * bdays * (1 - 0.002), rel=0.003)


def test_every_row_loads_without_rejects(make_database):
    url = make_database()
    provider = SyntheticProvider(n_symbols=8, start=date(2022, 1, 1), split_prob=0.01)
    rows = _all(provider)
    expected, splits = len(rows), int(rows["split_factor"].notna().sum())
    assert splits > 0

    result = load_prices(url, provider.fetch(), provider.name, today=TODAY)

    assert result.rows_rejected == 0
    assert result.rows_inserted == result.rows_in == expected
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select count(*), count(distinct symbol), count(split_factor) from raw.prices")
        assert cur.fetchone() == (expected, 8, splits)
    conn.close()
