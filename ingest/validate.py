"""Row checks applied before anything lands in raw.prices.

Each rejected row keeps the values as received and the first reason it failed. Dates are
accepted only in unambiguous forms (YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD, optionally followed by
a time, whose date part is taken as written): `01/03/2024` could be January or March, so it
is rejected rather than guessed.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

PRICES = ["open", "high", "low", "close", "adj_close"]
NUMERIC = [*PRICES, "volume"]
OPTIONAL = ["dividend", "split_factor"]
DUPLICATE = "duplicate (symbol, trade_date) in batch"
MAX_VOLUME = 1e15

# The same separator twice; an optional time (and UTC offset) and nothing else after it.
_ISO_DATE = (
    r"^\s*(\d{4})([-/])(\d{2})\2(\d{2})"
    r"(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\s*$"
)
_COMPACT_DATE = r"^\s*(\d{4})(\d{2})(\d{2})\s*$"


def parse_dates(values: pd.Series) -> pd.Series:
    """datetime64 (date part only) per value; NaT where the value is not an unambiguous date."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values.dt.tz_localize(None) if values.dt.tz is not None else values
        return dates.dt.normalize()
    # Fast path: plain YYYY-MM-DD strings and date objects (nearly every row of every feed).
    parsed = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    retry = parsed.isna() & values.notna()
    if retry.any():
        text = values[retry].astype("string")
        iso = text.str.extract(_ISO_DATE)[[0, 2, 3]].set_axis([0, 1, 2], axis=1)
        parts = iso.fillna(text.str.extract(_COMPACT_DATE))
        joined = parts[0] + "-" + parts[1] + "-" + parts[2]
        parsed[retry] = pd.to_datetime(joined, format="%Y-%m-%d", errors="coerce")
    return parsed


def _numeric(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    return pd.to_numeric(values.astype("string").str.strip(), errors="coerce").astype("float64")


def _normalise_symbols(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Stripped upper-case symbols (NA where missing or blank) and an integer code per row
    (-1 where missing). The string work runs once per distinct value, not once per row."""
    codes, uniques = pd.factorize(values)
    names = pd.Series(uniques, dtype="string[pyarrow]").str.strip().str.upper()
    # " aapl" and "AAPL" are one symbol: one code, for the duplicate check.
    canon_codes, canon_names = pd.factorize(names.mask(names == ""))
    row_codes = np.append(canon_codes, -1)[codes]  # code -1 (missing) picks the appended -1
    symbol = pd.array(np.asarray(canon_names, dtype=object), dtype="string[pyarrow]").take(
        row_codes, allow_fill=True
    )
    return pd.Series(symbol, index=values.index), row_codes


def split_valid(raw: pd.DataFrame, today: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (valid rows with typed columns, rejected rows as received plus `reason`)."""
    bad = np.zeros(len(raw), dtype=bool)
    reason = np.full(len(raw), None, dtype=object)

    def reject(mask: pd.Series | np.ndarray, why: str) -> None:
        new = np.asarray(mask, dtype=bool) & ~bad
        reason[new] = why
        bad[new] = True

    missing = [c for c in ("symbol", "trade_date", *NUMERIC) if c not in raw.columns]
    if missing:
        raise ValueError(f"provider frame lacks columns: {', '.join(missing)}")

    symbol, symbol_code = _normalise_symbols(raw["symbol"])
    reject(symbol_code < 0, "missing symbol")

    trade_date = parse_dates(raw["trade_date"])
    reject(trade_date.isna(), "unparseable trade_date (expected YYYY-MM-DD)")

    values = {c: _numeric(raw[c]) for c in NUMERIC}
    for col in NUMERIC:
        reject(values[col].isna(), f"missing or non-numeric {col}")
    for col in PRICES:
        reject(~np.isfinite(values[col]) | (values[col] <= 0), f"{col} must be > 0")
    reject(~np.isfinite(values["volume"]) | (values["volume"] < 0), "volume must be >= 0")
    # bigint holds 9.2e18; anything near it is a unit or parsing error, not a trading volume.
    reject(values["volume"] >= MAX_VOLUME, f"volume must be < {MAX_VOLUME:.0e}")
    body_low = np.minimum(values["open"], values["close"])
    body_high = np.maximum(values["open"], values["close"])
    reject(
        (values["low"] > body_low) | (body_high > values["high"]),
        "inconsistent OHLC: need low <= open, close <= high",
    )
    extras: dict[str, pd.Series] = {}
    for col in OPTIONAL:
        if col not in raw.columns:
            continue
        received = raw[col]
        if pd.api.types.is_numeric_dtype(received):
            blank = received.isna()
        else:
            blank = received.isna() | (received.astype("string").str.strip() == "")
        extras[col] = _numeric(received)
        reject(~blank & extras[col].isna(), f"non-numeric {col}")
        floor_ok = extras[col] >= 0 if col == "dividend" else extras[col] > 0
        reject(~blank & extras[col].notna() & ~floor_ok, f"{col} out of range")
    reject(trade_date > pd.Timestamp(today), "trade_date in the future")

    # One int64 per (symbol, day): symbol code in the high bits, days since 1970 in the low.
    days = trade_date.to_numpy(dtype="datetime64[D]").astype("int64")
    known = (symbol_code >= 0) & trade_date.notna().to_numpy()
    key = pd.Series(np.where(known, (symbol_code.astype("int64") << 32) + days, -1))
    reject(key.duplicated(keep=False).to_numpy() & known, DUPLICATE)

    ok = ~bad
    valid = pd.DataFrame(
        {
            "symbol": symbol[ok],
            "trade_date": trade_date[ok],
            **{c: values[c][ok] for c in PRICES},
            "volume": values["volume"][ok].round().astype("int64"),
            **{c: extras[c][ok] if c in extras else np.nan for c in OPTIONAL},
        }
    )
    rejected = raw.loc[~ok].copy()
    rejected["reason"] = reason[~ok].astype(str) if (~ok).any() else pd.Series(dtype=object)
    return valid.reset_index(drop=True), rejected.reset_index(drop=True)
