"""Daily OHLCV from Yahoo Finance through yfinance, one symbol at a time.

Each symbol is one `Ticker(symbol).history(auto_adjust=False, actions=True)` call, so the
frame carries Yahoo's Close (split-adjusted, not dividend-adjusted), its Adj Close (split-
and dividend-adjusted) and the day's corporate actions. Rows are normalised to
PRICE_COLUMNS plus `dividend` and `split_factor`, which hold a value on the day of the
event and NULL otherwise (yfinance writes 0 for "none"). The trade date is the exchange's
own calendar date: yfinance stamps a daily bar at local midnight in the exchange's time
zone, and that wall-clock date is kept as is, never shifted through UTC.

A symbol that keeps failing, or that comes back empty, becomes a FetchFailure and the
batch goes on with the others. Network errors and rate limiting are retried with
exponential back-off; anything else (an unknown or delisted symbol, an unexpected
response) fails the symbol at once.

The tests never touch the network (the build machine has none): they inject `download`
and replay hand-made CSV files in yfinance's output shape, see tests/ingest/data/yahoo/.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ingest.providers.base import CHUNK_ROWS, FetchFailure, FetchItem, Provider

log = logging.getLogger(__name__)

# download(symbol, start, end) -> yfinance's history frame; start and end are inclusive
# calendar dates, None meaning "as far as Yahoo goes".
Download = Callable[[str, date | None, date | None], pd.DataFrame]

DEFAULT_SYMBOLS = ("AAPL", "GOOG", "IBM", "META", "MSFT")

# yfinance's column for each of ours.
_YAHOO_COLUMNS = {
    "open": "Open",
    "high": "High",
    "low": "Low",
    "close": "Close",
    "adj_close": "Adj Close",
    "volume": "Volume",
}
_ACTION_COLUMNS = {"dividend": "Dividends", "split_factor": "Stock Splits"}


class TransientFetchError(Exception):
    """A failure worth retrying: rate limiting, a dropped connection, a timeout."""


# OSError covers ConnectionError, TimeoutError and curl_cffi's request errors.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (TransientFetchError, OSError)


def yfinance_download(session: Any = None) -> Download:
    """The real downloader: yfinance's `Ticker.history`, raising instead of logging errors."""
    import yfinance as yf
    from yfinance.exceptions import YFRateLimitError

    # By default yfinance logs a failure and returns an empty frame, which hides a dropped
    # connection (worth a retry) behind "no data". Raising lets us tell them apart.
    yf.config.debug.hide_exceptions = False

    def download(symbol: str, start: date | None, end: date | None) -> pd.DataFrame:
        options: dict[str, Any] = {"interval": "1d", "auto_adjust": False, "actions": True}
        if start is None:
            options["period"] = "max"
        else:
            options["start"] = start.isoformat()
        if end is not None:
            options["end"] = (end + timedelta(days=1)).isoformat()  # yfinance's end is exclusive
        try:
            history: pd.DataFrame = yf.Ticker(symbol, session=session).history(**options)
            return history
        except YFRateLimitError as exc:
            raise TransientFetchError(str(exc)) from exc

    return download


def normalise(symbol: str, history: pd.DataFrame) -> pd.DataFrame:
    """yfinance's history frame -> PRICE_COLUMNS + dividend, split_factor; values as received."""
    missing = [col for col in _YAHOO_COLUMNS.values() if col not in history.columns]
    if missing:
        raise ValueError(f"yfinance response lacks {', '.join(missing)}")
    index = pd.DatetimeIndex(history.index)
    frame = pd.DataFrame(
        {
            "symbol": np.full(len(history), symbol, dtype=object),
            # Local wall-clock date of a tz-aware index: the exchange's trading day.
            "trade_date": np.asarray(index.date, dtype=object),
            **{ours: history[theirs].to_numpy() for ours, theirs in _YAHOO_COLUMNS.items()},
        }
    )
    for ours, theirs in _ACTION_COLUMNS.items():
        if theirs in history.columns:
            values = pd.to_numeric(history[theirs], errors="coerce").to_numpy(dtype="float64")
            frame[ours] = np.where(values > 0, values, np.nan)
        else:
            frame[ours] = np.nan
    return frame


class YahooProvider(Provider):
    name = "yahoo"

    def __init__(
        self,
        session: Any = None,
        download: Download | None = None,
        *,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        attempts: int = 3,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`session` goes to yfinance (the default downloader only); `download` replaces
        yfinance altogether. A transient error is retried up to `attempts` tries in all,
        waiting backoff_seconds, then twice that, and so on."""
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self._download = download or yfinance_download(session)
        self._symbols = list(symbols)
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep

    def available_symbols(self) -> list[str]:
        """Yahoo has no listing to ask; this is the configured watch list."""
        return list(self._symbols)

    def fetch(
        self,
        symbols: Sequence[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> Iterator[FetchItem]:
        for symbol in symbols or self.available_symbols():
            symbol = symbol.strip().upper()
            try:
                history = self._download_with_retries(symbol, start, end)
                frame = normalise(symbol, history)
            except Exception as exc:  # one bad symbol must not sink the batch
                error = f"{type(exc).__name__}: {exc}"
                log.warning("yahoo: %s failed: %s", symbol, error)
                yield FetchFailure(symbol, error)
                continue
            if frame.empty:
                yield FetchFailure(
                    symbol, f"no rows from Yahoo for {start or '...'}..{end or '...'}"
                )
                continue
            for offset in range(0, len(frame), CHUNK_ROWS):
                yield frame.iloc[offset : offset + CHUNK_ROWS].reset_index(drop=True)

    def _download_with_retries(
        self, symbol: str, start: date | None, end: date | None
    ) -> pd.DataFrame:
        for attempt in range(1, self.attempts):
            try:
                return self._download(symbol, start, end)
            except TRANSIENT_ERRORS as exc:
                wait = self.backoff_seconds * 2 ** (attempt - 1)
                log.info(
                    "yahoo: %s attempt %d failed (%s); retrying in %.1fs",
                    symbol,
                    attempt,
                    exc,
                    wait,
                )
                self._sleep(wait)
        try:
            return self._download(symbol, start, end)
        except TRANSIENT_ERRORS as exc:
            raise TransientFetchError(
                f"gave up after {self.attempts} attempts: {type(exc).__name__}: {exc}"
            ) from exc
