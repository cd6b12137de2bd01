"""The built-in offline provider: real daily OHLCV shipped in the `bokeh_sampledata` package.

AAPL, GOOG, IBM, MSFT and FB, 2000-2013, with split- and dividend-adjusted closes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date

import pandas as pd

from ingest.providers.base import Provider
from ingest.schema import PRICE_COLUMNS

SAMPLE_SYMBOLS = ("AAPL", "FB", "GOOG", "IBM", "MSFT")


class SampleProvider(Provider):
    name = "sample"

    def available_symbols(self) -> list[str]:
        return list(SAMPLE_SYMBOLS)

    def fetch(
        self,
        symbols: Sequence[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> Iterator[pd.DataFrame]:
        from bokeh_sampledata import stocks

        wanted = [s.upper() for s in symbols] if symbols else self.available_symbols()
        unknown = sorted(set(wanted) - set(SAMPLE_SYMBOLS))
        if unknown:
            raise ValueError(
                f"sample provider has no data for {', '.join(unknown)}; "
                f"it ships {', '.join(SAMPLE_SYMBOLS)}"
            )
        for symbol in wanted:
            frame = pd.DataFrame(getattr(stocks, symbol))
            frame.insert(0, "symbol", symbol)
            frame = frame.rename(columns={"date": "trade_date"})
            dates = pd.to_datetime(frame["trade_date"]).dt.date
            mask = pd.Series(True, index=frame.index)
            if start is not None:
                mask &= dates >= start
            if end is not None:
                mask &= dates <= end
            yield frame.loc[mask, PRICE_COLUMNS].reset_index(drop=True)
