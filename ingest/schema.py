"""The raw.prices contract, owned by ingest: its key, its columns and their roles.

Every module that names raw.prices' columns (providers, validation, the loader, the
Great Expectations suite) takes them from here. core/sql/schema.sql creates the table.
"""

from __future__ import annotations

KEY_COLUMNS = ["symbol", "trade_date"]
# Prices: positive, and low <= open, close <= high.
PRICES = ["open", "high", "low", "close", "adj_close"]
NUMERIC = [*PRICES, "volume"]
# The columns every provider yields (values may still be malformed: the loader checks them).
PRICE_COLUMNS = [*KEY_COLUMNS, *NUMERIC]
# Known extra columns, kept in raw.prices when a provider has them (NULL otherwise).
OPTIONAL_COLUMNS = ["dividend", "split_factor"]
# What the loader writes, in order (provider, batch_id and ingested_at follow).
COLUMNS = [*PRICE_COLUMNS, *OPTIONAL_COLUMNS]
