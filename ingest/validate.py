"""Row checks applied before anything lands in raw.prices.

Each rejected row keeps the values as received and the first reason it failed.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

NUMERIC = ["open", "high", "low", "close", "adj_close", "volume"]
PRICES = ["open", "high", "low", "close", "adj_close"]


def split_valid(raw: pd.DataFrame, today: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (valid rows with typed columns, rejected rows as received plus `reason`)."""
    reason = pd.Series(pd.NA, index=raw.index, dtype="object")

    def reject(mask: pd.Series, why: str) -> None:
        reason[mask & reason.isna()] = why

    symbol = raw["symbol"].astype("string").str.strip().str.upper()
    reject(symbol.isna() | (symbol == ""), "missing symbol")

    trade_date = pd.to_datetime(raw["trade_date"], errors="coerce", format="mixed")
    reject(trade_date.isna(), "unparseable trade_date")

    values = {c: pd.to_numeric(raw[c], errors="coerce") for c in NUMERIC}
    for col in NUMERIC:
        reject(values[col].isna(), f"missing or non-numeric {col}")
    for col in PRICES:
        reject(~np.isfinite(values[col]) | (values[col] <= 0), f"{col} must be > 0")
    reject(values["volume"] < 0, "volume must be >= 0")
    low, high = values["low"], values["high"]
    body_low = np.minimum(values["open"], values["close"])
    body_high = np.maximum(values["open"], values["close"])
    reject(
        (low > body_low) | (body_high > high), "inconsistent OHLC: need low <= open,close <= high"
    )
    reject(trade_date.dt.date > today, "trade_date in the future")

    key = pd.DataFrame({"symbol": symbol, "trade_date": trade_date})
    reject(
        key.duplicated(keep=False) & key.notna().all(axis=1),
        "duplicate (symbol, trade_date) in batch",
    )

    ok = reason.isna()
    valid = pd.DataFrame(
        {
            "symbol": symbol[ok],
            "trade_date": trade_date[ok].dt.date,
            **{c: values[c][ok].astype("float64") for c in PRICES},
            "volume": values["volume"][ok].round().astype("int64"),
        }
    )
    rejected = raw.loc[~ok].copy()
    rejected["reason"] = reason[~ok]
    return valid.reset_index(drop=True), rejected.reset_index(drop=True)
