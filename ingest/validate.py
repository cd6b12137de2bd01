"""Row checks applied before anything lands in raw.prices.

Each rejected row keeps the values as received and the first reason it failed. Dates are
accepted only in unambiguous forms (YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD, optionally followed by
a time, whose date part is taken as written): `01/03/2024` could be January or March, so it
is rejected rather than guessed.

No field may hold a control character (U+0000-U+001F, U+007F) once its surrounding whitespace
is stripped: a NUL ends a C string, so `AAA\\0-FAKE` would otherwise reach some reader as `AAA`.
A symbol is 1 to 32 of `A-Z 0-9 . - ^ = / _ &` after stripping and upper-casing: enough for
exchange suffixes (`BRK.B`, `8306.T`, `M&M.NS`), share classes (`BRK-B`, `RDS/A`), indices
(`^GSPC`) and Yahoo's futures and currencies (`ES=F`, `EURUSD=X`); anything else (spaces,
quotes, semicolons, non-ASCII letters, a 3,000-character "symbol") is quarantined.

Text columns are checked with Arrow compute kernels over whole columns: a whitespace strip
only where a column holds whitespace or non-ASCII bytes, one cast per column to float64 or
date32, and Python per value only for the values that cast refuses (`1_000`, ` NaN`, ...),
so a clean vendor file costs no Python per row.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingest.schema import NUMERIC, PRICES
from ingest.schema import OPTIONAL_COLUMNS as OPTIONAL

DUPLICATE = "duplicate (symbol, trade_date) in batch"
INVALID_SYMBOL = "invalid symbol (1 to 32 of A-Z 0-9 . - ^ = / _ &)"
SYMBOL_PATTERN = r"[A-Z0-9.\-^=/_&]{1,32}"
MAX_VOLUME = 1e15

# The same separator twice; an optional time (and UTC offset) and nothing else after it.
_ISO_DATE = (
    r"^\s*(\d{4})([-/])(\d{2})\2(\d{2})"
    r"(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\s*$"
)
_COMPACT_DATE = r"^\s*(\d{4})(\d{2})(\d{2})\s*$"
# What Arrow's float cast reads exactly as pandas does; other spellings go to pandas.
_PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_CONTROL = "[\x00-\x1f\x7f]"


def text_array(values: pd.Series) -> pa.Array | None:
    """The column as one Arrow string array (nulls where missing); None for a numeric or
    datetime column, which holds no text to strip or check."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return None
    if not isinstance(values.dtype, pd.StringDtype | pd.ArrowDtype):
        values = values.astype("string[pyarrow]")
    array = pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.large_string())
    return array


def _bytes_range(text: pa.Array) -> tuple[int, int]:
    """Smallest and largest byte of the column's characters ((255, 0) when there are none)."""
    data = text.buffers()[2]
    if data is None or data.size == 0:
        return 255, 0
    raw = np.frombuffer(data, dtype=np.uint8)
    return int(raw.min()), int(raw.max())


def stripped(text: pa.Array) -> pa.Array:
    """Leading and trailing (Unicode) whitespace removed; a no-op, at the cost of one scan of
    the bytes, for the usual column of plain ASCII without spaces."""
    low, high = _bytes_range(text)
    if low > 0x20 and high < 0x80:
        return text
    return pc.utf8_trim_whitespace(text)


def _has_control(text: pa.Array) -> np.ndarray | None:
    """Per row: does the value hold a control character? None when no row does."""
    data = text.buffers()[2]
    if data is None or data.size == 0:
        return None
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.min() >= 0x20 and not (raw == 0x7F).any():
        return None
    found = pc.match_substring_regex(text, _CONTROL).fill_null(False)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def parse_dates(values: pd.Series) -> pd.Series:
    """datetime64 (date part only) per value; NaT where the value is not an unambiguous date."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values.dt.tz_localize(None) if values.dt.tz is not None else values
        normalized: pd.Series = dates.dt.normalize()
        return normalized
    text = text_array(values)
    if text is not None:
        try:  # every row YYYY-MM-DD: one Arrow cast (nearly every frame of every feed)
            days = pc.cast(stripped(text), pa.date32())
            return pd.Series(
                days.to_numpy(zero_copy_only=False).astype("datetime64[ns]"), index=values.index
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    # Fast path: plain YYYY-MM-DD strings and date objects.
    parsed = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    retry = parsed.isna() & values.notna()
    if retry.any():
        text_values = values[retry].astype("string")
        iso = text_values.str.extract(_ISO_DATE)[[0, 2, 3]].set_axis([0, 1, 2], axis=1)
        parts = iso.fillna(text_values.str.extract(_COMPACT_DATE))
        joined = parts[0] + "-" + parts[1] + "-" + parts[2]
        parsed[retry] = pd.to_datetime(joined, format="%Y-%m-%d", errors="coerce")
    return parsed.astype("datetime64[ns]")


def _numeric(values: pd.Series, text: pa.Array | None) -> np.ndarray:
    """float64 per value, NaN where missing or not a number. `text`: the stripped column."""
    if text is None:
        return np.asarray(values.to_numpy(dtype="float64", na_value=np.nan))
    return numbers(text)


def numbers(text: pa.Array) -> np.ndarray:
    """float64 per stripped text value, NaN where missing or not a number (as pandas reads
    numbers: Arrow's cast where it agrees, pandas for the values that cast refuses)."""
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)
    try:
        return np.asarray(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False))
    except pa.ArrowInvalid:
        pass
    plain = pc.match_substring_regex(text, _PLAIN_NUMBER).fill_null(False)
    try:
        out = pc.cast(pc.if_else(plain, text, pa.scalar(None, text.type)), pa.float64())
        result = np.array(out.to_numpy(zero_copy_only=False), dtype="float64")
    except pa.ArrowInvalid:  # a plain spelling Arrow still refuses: pandas reads the column
        result = np.full(len(text), np.nan)
        plain = pa.array(np.zeros(len(text), dtype=bool))
    odd = ~plain.to_numpy(zero_copy_only=False) & text.is_valid().to_numpy(zero_copy_only=False)
    if odd.any():
        rest = pd.Series(text.filter(pa.array(odd)).to_pylist(), dtype=object)
        result[odd] = pd.to_numeric(rest, errors="coerce").astype("float64").to_numpy()
    return result


def _normalise_symbols(
    values: pd.Series, text: pa.Array | None
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Stripped upper-case symbols (NA where missing or blank), an integer code per row (-1
    where missing) and whether each row's symbol is well-formed. The string work runs once
    per distinct value, not once per row."""
    if text is None:
        text = pa.array(values.astype("string[pyarrow]"))
    encoded = pc.dictionary_encode(text)
    uniques = encoded.dictionary.to_pandas().astype("string[pyarrow]")
    names = uniques.str.strip().str.upper()
    # " aapl" and "AAPL" are one symbol: one code, for the duplicate check.
    canon_codes, canon_names = pd.factorize(names.mask(names == ""))
    indices = encoded.indices.fill_null(len(uniques)).to_numpy(zero_copy_only=False)
    row_codes = np.append(canon_codes, -1)[indices]  # missing picks the appended -1
    canon = pd.Series(np.asarray(canon_names, dtype=object), dtype="string[pyarrow]")
    well_formed = np.append(canon.str.fullmatch(SYMBOL_PATTERN).to_numpy(dtype=bool), False)
    symbol = pd.array(canon.array, dtype="string[pyarrow]").take(row_codes, allow_fill=True)
    return pd.Series(symbol, index=values.index), row_codes, well_formed[row_codes]


def _plain_decimals(text: pa.Array, integer: bool) -> bool:
    """Is every character of the column a digit (or `+ - .` unless `integer`)? Then each value
    that reads as a number is a plain decimal that PostgreSQL reads as the same float64 (both
    round correctly) or bigint, so the loader can send the text instead of formatting floats."""
    low, high = _bytes_range(text)
    return low >= (0x30 if integer else 0x2B) and high <= 0x39


def split_valid(raw: pd.DataFrame, today: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (valid rows with typed columns, rejected rows as received plus `reason`)."""
    valid, rejected, _ = split_valid_for_copy(raw, today)
    return valid, rejected


def split_valid_for_copy(
    raw: pd.DataFrame, today: date
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pa.Array]]:
    """split_valid, plus the valid rows' text of each numeric column whose values are all
    plain decimals as received (`_plain_decimals`): what COPY reads back as the same values."""
    bad = np.zeros(len(raw), dtype=bool)
    reason = np.full(len(raw), None, dtype=object)

    def reject(mask: pd.Series | np.ndarray, why: str) -> None:
        new = np.asarray(mask, dtype=bool) & ~bad
        reason[new] = why
        bad[new] = True

    missing = [c for c in ("symbol", "trade_date", *NUMERIC) if c not in raw.columns]
    if missing:
        raise ValueError(f"provider frame lacks columns: {', '.join(missing)}")

    texts: dict[str, pa.Array | None] = {}
    for col in raw.columns:
        text = text_array(raw[col])
        texts[str(col)] = None if text is None else stripped(text)
        control = None if text is None else _has_control(texts[str(col)])
        if control is not None:
            reject(control, f"control character in {col}")

    symbol, symbol_code, well_formed = _normalise_symbols(raw["symbol"], texts["symbol"])
    reject(symbol_code < 0, "missing symbol")
    reject(~well_formed, INVALID_SYMBOL)

    trade_date = parse_dates(raw["trade_date"])
    reject(trade_date.isna(), "unparseable trade_date (expected YYYY-MM-DD)")

    values = {c: _numeric(raw[c], texts[c]) for c in NUMERIC}
    for col in NUMERIC:
        reject(np.isnan(values[col]), f"missing or non-numeric {col}")
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
    extras: dict[str, np.ndarray] = {}
    for col in OPTIONAL:
        if col not in raw.columns:
            continue
        text = texts[col]
        if text is None:
            blank = raw[col].isna().to_numpy()
        else:
            blank = ~pc.fill_null(pc.not_equal(text, ""), False).to_numpy(zero_copy_only=False)
        extras[col] = _numeric(raw[col], text)
        reject(~blank & np.isnan(extras[col]), f"non-numeric {col}")
        with np.errstate(invalid="ignore"):
            floor_ok = extras[col] >= 0 if col == "dividend" else extras[col] > 0
        reject(~blank & ~np.isnan(extras[col]) & ~floor_ok, f"{col} out of range")
    reject(trade_date > pd.Timestamp(today), "trade_date in the future")

    # One int64 per (symbol, day): symbol code in the high bits, days since 1970 in the low.
    days = trade_date.to_numpy(dtype="datetime64[D]").astype("int64")
    known = (symbol_code >= 0) & trade_date.notna().to_numpy()
    key = pd.Series(np.where(known, (symbol_code.astype("int64") << 32) + days, -1))
    reject(key.duplicated(keep=False).to_numpy() & known, DUPLICATE)

    ok = ~bad
    chosen = pa.array(ok)
    exact = {}
    for col in NUMERIC:
        text = texts[col]
        if text is not None and _plain_decimals(text, integer=col == "volume"):
            exact[col] = text if ok.all() else text.filter(chosen)
    valid = pd.DataFrame(
        {
            "symbol": symbol[ok].reset_index(drop=True),
            "trade_date": trade_date[ok].reset_index(drop=True),
            **{c: values[c][ok] for c in PRICES},
            "volume": values["volume"][ok].round().astype("int64"),
            **{c: extras[c][ok] if c in extras else np.nan for c in OPTIONAL},
        }
    )
    rejected = raw.loc[~ok].copy()
    rejected["reason"] = reason[~ok].astype(str) if (~ok).any() else pd.Series(dtype=object)
    return valid, rejected.reset_index(drop=True), exact
