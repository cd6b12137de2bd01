"""The Yahoo provider, without the network.

The build machine has no internet, so these tests cannot record real Yahoo responses. The
files in tests/ingest/data/yahoo/ are hand-made in yfinance 1.7's output shape for
`Ticker.history(auto_adjust=False, actions=True)`: a `Date` index at local midnight in the
exchange's time zone, then Open, High, Low, Close, Adj Close, Volume, Dividends, Stock
Splits (and Capital Gains for funds). AAPL holds a dividend (2020-08-07) and a 4:1 split
(2020-08-31); 7203.T trades in Tokyo, where a shift through UTC would move every date.
The tests inject a `download` that replays them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import psycopg2
import pytest

from ingest.loader import load_prices
from ingest.providers import FetchFailure, get_provider
from ingest.providers.yahoo import TransientFetchError, YahooProvider, yfinance_download
from ingest.schema import OPTIONAL_COLUMNS, PRICE_COLUMNS

DATA = Path(__file__).parent / "data" / "yahoo"
EXCHANGE_TZ = {"AAPL": "America/New_York", "SPY": "America/New_York", "7203.T": "Asia/Tokyo"}
TODAY = date(2024, 6, 28)


def recorded(symbol: str) -> pd.DataFrame:
    """A fixture file read back into the frame yfinance would have returned."""
    frame = pd.read_csv(DATA / f"{symbol}.csv", index_col="Date")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index, utc=True), name="Date")
    frame.index = frame.index.tz_convert(EXCHANGE_TZ[symbol])
    return frame


def empty_history() -> pd.DataFrame:
    """What yfinance returns when it has nothing (yfinance.utils.empty_df)."""
    return pd.DataFrame(
        index=pd.DatetimeIndex([], name="Date"),
        data={c: np.nan for c in ["Open", "High", "Low", "Close", "Adj Close", "Volume"]},
    )


class Replay:
    """A `download` that serves the fixture files, after any queued errors for a symbol."""

    def __init__(self, errors: dict[str, list[Exception]] | None = None) -> None:
        self.errors = errors or {}
        self.calls: list[tuple[str, date | None, date | None]] = []

    def __call__(self, symbol: str, start: date | None, end: date | None) -> pd.DataFrame:
        self.calls.append((symbol, start, end))
        if self.errors.get(symbol):
            raise self.errors[symbol].pop(0)
        if symbol not in EXCHANGE_TZ:
            return empty_history()
        frame = recorded(symbol)
        days = pd.DatetimeIndex(frame.index).date
        keep = np.ones(len(frame), dtype=bool)
        if start is not None:
            keep &= days >= start
        if end is not None:
            keep &= days <= end
        return frame[keep]


@pytest.fixture
def yfinance() -> Iterator[ModuleType]:
    """yfinance, with the global setting the default downloader changes put back after."""
    yf = pytest.importorskip("yfinance")
    hide_exceptions = yf.config.debug.hide_exceptions
    yield yf
    yf.config.debug.hide_exceptions = hide_exceptions


def _provider(replay: Replay, **options: object) -> tuple[YahooProvider, list[float]]:
    sleeps: list[float] = []
    provider = YahooProvider(download=replay, sleep=sleeps.append, **options)  # type: ignore[arg-type]
    return provider, sleeps


def test_registered():
    assert isinstance(get_provider("yahoo", download=Replay()), YahooProvider)


def test_history_is_normalised_to_price_columns():
    items = list(YahooProvider(download=Replay()).fetch(["AAPL"]))
    assert len(items) == 1
    frame = items[0]
    assert list(frame.columns) == PRICE_COLUMNS + OPTIONAL_COLUMNS
    assert len(frame) == 25
    raw = recorded("AAPL")
    first = frame.iloc[0]
    assert first["symbol"] == "AAPL"
    assert first["trade_date"] == date(2020, 8, 3)
    assert (first["open"], first["high"], first["low"], first["close"]) == tuple(
        raw.iloc[0][["Open", "High", "Low", "Close"]]
    )
    assert first["adj_close"] == raw.iloc[0]["Adj Close"]
    assert first["volume"] == 308151200

    by_day = frame.set_index("trade_date")
    assert by_day.loc[date(2020, 8, 7), "dividend"] == pytest.approx(0.205)
    assert by_day.loc[date(2020, 8, 31), "split_factor"] == 4.0
    # Actions are event columns: NULL (NaN) on every other day, never 0.
    assert by_day["dividend"].notna().sum() == 1
    assert by_day["split_factor"].notna().sum() == 1


def test_trade_date_is_the_exchange_calendar_date():
    frame = next(iter(YahooProvider(download=Replay()).fetch(["7203.T"])))
    # 2024-01-04 00:00+09:00 is 2024-01-03 in UTC: the exchange's date must survive.
    assert list(frame["trade_date"]) == [
        date(2024, 1, 4),
        date(2024, 1, 5),
        date(2024, 1, 9),
        date(2024, 1, 10),
        date(2024, 1, 11),
    ]
    assert all(type(d) is date for d in frame["trade_date"])


def test_fund_columns_are_ignored_and_dates_are_passed_on():
    replay = Replay()
    provider = YahooProvider(download=replay)
    frame = next(iter(provider.fetch(["SPY"], date(2024, 3, 15), date(2024, 3, 18))))
    assert list(frame.columns) == PRICE_COLUMNS + OPTIONAL_COLUMNS
    assert list(frame["trade_date"]) == [date(2024, 3, 15), date(2024, 3, 18)]
    assert list(frame["dividend"].fillna(0)) == [1.595, 0.0]
    assert replay.calls == [("SPY", date(2024, 3, 15), date(2024, 3, 18))]


def test_failing_symbol_becomes_a_failure_and_the_others_load(make_database):
    replay = Replay({"BADX": [KeyError("chart")]})
    provider, sleeps = _provider(replay)

    items = list(provider.fetch(["AAPL", "BADX", "SPY"]))

    failures = [i for i in items if isinstance(i, FetchFailure)]
    frames = [i for i in items if isinstance(i, pd.DataFrame)]
    assert failures == [FetchFailure("BADX", "KeyError: 'chart'")]
    assert [f["symbol"].iloc[0] for f in frames] == ["AAPL", "SPY"]
    assert [c[0] for c in replay.calls].count("BADX") == 1  # not a transient error: no retry
    assert sleeps == []

    url = make_database()
    result = load_prices(url, items, provider.name, today=TODAY)
    assert (result.rows_in, result.rows_inserted, result.rows_rejected) == (28, 28, 0)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select units_failed, failures from raw.ingest_batches")
        assert cur.fetchone() == (1, [{"unit": "BADX", "error": "KeyError: 'chart'"}])
        cur.execute(
            "select trade_date, close, dividend, split_factor from raw.prices "
            "where symbol = 'AAPL' and (dividend is not null or split_factor is not null) "
            "order by trade_date"
        )
        assert cur.fetchall() == [
            (date(2020, 8, 7), 111.11, 0.205, None),
            (date(2020, 8, 31), 129.04, None, 4.0),
        ]
    conn.close()


def test_transient_errors_are_retried_with_backoff():
    replay = Replay(
        {"AAPL": [ConnectionError("reset by peer"), TransientFetchError("Too Many Requests")]}
    )
    provider, sleeps = _provider(replay, backoff_seconds=0.5)

    items = list(provider.fetch(["AAPL"]))

    assert len(items) == 1 and isinstance(items[0], pd.DataFrame)
    assert len(replay.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_retries_are_bounded():
    replay = Replay({"AAPL": [ConnectionError(f"attempt {i}") for i in range(10)]})
    provider, sleeps = _provider(replay, attempts=4)

    items = list(provider.fetch(["AAPL", "SPY"]))

    assert isinstance(items[0], FetchFailure) and items[0].unit == "AAPL"
    assert "gave up after 4 attempts" in items[0].error
    assert "attempt 3" in items[0].error
    assert [c[0] for c in replay.calls] == ["AAPL"] * 4 + ["SPY"]
    assert sleeps == [1.0, 2.0, 4.0]
    assert isinstance(items[1], pd.DataFrame)


def test_empty_response_is_a_failure():
    replay = Replay()
    provider, sleeps = _provider(replay)

    items = list(provider.fetch(["NODATA", "AAPL"], date(2020, 8, 3), date(2020, 8, 4)))

    assert isinstance(items[0], FetchFailure)
    assert items[0].unit == "NODATA"
    assert "no rows" in items[0].error
    assert len(items[1]) == 2
    assert sleeps == []


def test_response_without_adj_close_is_a_failure():
    def adjusted_download(symbol: str, start: date | None, end: date | None) -> pd.DataFrame:
        return recorded("AAPL").drop(columns=["Adj Close"])  # auto_adjust=True's shape

    items = list(YahooProvider(download=adjusted_download).fetch(["AAPL"]))
    assert isinstance(items[0], FetchFailure)
    assert "Adj Close" in items[0].error


def test_default_downloader_uses_yfinance_history(yfinance, monkeypatch):
    """The real yfinance path up to the HTTP call: Ticker is built, history is replaced."""
    yf = yfinance
    from yfinance.exceptions import YFRateLimitError

    calls: list[tuple[str, object, dict]] = []
    rate_limited = [YFRateLimitError()]

    class RecordingTicker(yf.Ticker):
        def history(self, **options: object) -> pd.DataFrame:
            calls.append((self.ticker, self.session, options))
            if rate_limited:
                raise rate_limited.pop()
            return recorded("AAPL")

    monkeypatch.setattr(yf, "Ticker", RecordingTicker)
    session = yf.data.new_session()
    sleeps: list[float] = []
    provider = YahooProvider(session=session, sleep=sleeps.append)

    frame = next(iter(provider.fetch(["aapl"], date(2020, 8, 3), date(2020, 9, 4))))

    assert yf.config.debug.hide_exceptions is False  # errors raise, so they can be retried
    assert len(frame) == 25
    assert sleeps == [1.0]  # the rate limit was retried
    symbol, used_session, options = calls[-1]
    assert (symbol, used_session) == ("AAPL", session)
    assert options == {
        "interval": "1d",
        "auto_adjust": False,
        "actions": True,
        "start": "2020-08-03",
        "end": "2020-09-05",  # yfinance's end is exclusive
    }

    download = yfinance_download()
    download("IBM", None, None)
    assert calls[-1][2] == {
        "interval": "1d",
        "auto_adjust": False,
        "actions": True,
        "period": "max",
    }


def test_default_provider_builds_without_network(yfinance):
    provider = get_provider("yahoo")  # yfinance importable; nothing is fetched

    assert provider.available_symbols() == ["AAPL", "GOOG", "IBM", "META", "MSFT"]
