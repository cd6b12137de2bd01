from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from datetime import date

import pandas as pd

# The columns every provider yields (values may still be malformed: the loader checks them).
PRICE_COLUMNS = ["symbol", "trade_date", "open", "high", "low", "close", "adj_close", "volume"]


class Provider(abc.ABC):
    """One source of daily OHLCV. Subclasses set `name` and implement `fetch`."""

    name: str = ""

    @abc.abstractmethod
    def available_symbols(self) -> list[str]:
        """Symbols this provider can deliver."""

    @abc.abstractmethod
    def fetch(
        self,
        symbols: Sequence[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Yield frames with PRICE_COLUMNS, one or more per symbol, rows as received."""
