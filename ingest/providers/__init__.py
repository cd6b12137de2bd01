"""Providers turn a market-data source into frames of daily OHLCV rows, as received.

A provider never cleans or drops rows: validation belongs to the loader, which keeps every
rejected row with its reason.
"""

from __future__ import annotations

from ingest.providers.base import PRICE_COLUMNS, Provider
from ingest.providers.sample import SampleProvider

PROVIDERS: dict[str, type[Provider]] = {SampleProvider.name: SampleProvider}


def get_provider(name: str, **options: object) -> Provider:
    try:
        cls = PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"unknown data provider {name!r}; known providers: {known}") from None
    return cls(**options)


__all__ = ["PRICE_COLUMNS", "PROVIDERS", "Provider", "get_provider"]
