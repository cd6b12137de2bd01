from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd

# Providers yield frames of at most this many rows, so memory stays flat as inputs grow.
CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class FetchFailure:
    """One unit (a symbol, or a file) a provider could not deliver; the rest of the batch loads.

    Providers yield it in place of a frame. The loader records it in the batch log, and the
    ingest DAG fails when too large a share of the units failed. A provider whose units are
    not symbols (csv: files) names the units of each frame in `frame.attrs["units"]` (a list:
    the csv provider packs several small files into one frame), or one in `attrs["unit"]`.
    """

    unit: str
    error: str


FetchItem = pd.DataFrame | FetchFailure


class Provider(abc.ABC):
    """One source of daily OHLCV. Subclasses set `name` and implement `fetch`."""

    name: str = ""

    @abc.abstractmethod
    def available_symbols(self) -> list[str]:
        """Symbols this provider can deliver (may be expensive for remote providers)."""

    @abc.abstractmethod
    def fetch(
        self,
        symbols: Sequence[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> Iterator[FetchItem]:
        """Yield frames with PRICE_COLUMNS (+ any OPTIONAL_COLUMNS), rows as received, at most
        CHUNK_ROWS each; yield a FetchFailure for a unit that failed and carry on."""
