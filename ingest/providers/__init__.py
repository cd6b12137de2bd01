"""Providers turn a market-data source into frames of daily OHLCV rows, as received.

A provider never cleans or drops rows: validation belongs to the loader, which keeps every
rejected row with its reason. Providers are imported lazily: `yahoo` needs yfinance and the
network, `csv` and `synthetic` nothing but pandas and numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

from ingest.providers.base import (
    CHUNK_ROWS,
    FetchFailure,
    FetchItem,
    Provider,
)

PROVIDERS: dict[str, str] = {
    "sample": "ingest.providers.sample:SampleProvider",
    "csv": "ingest.providers.csv:CsvProvider",
    "yahoo": "ingest.providers.yahoo:YahooProvider",
    "synthetic": "ingest.providers.synthetic:SyntheticProvider",
}


def get_provider(name: str, **options: Any) -> Provider:
    """Build a provider by name; options go to its constructor (e.g. csv: path=...)."""
    try:
        target = PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"unknown data provider {name!r}; known providers: {known}") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = cls(**options)
    return provider


__all__ = [
    "CHUNK_ROWS",
    "PROVIDERS",
    "FetchFailure",
    "FetchItem",
    "Provider",
    "get_provider",
]
