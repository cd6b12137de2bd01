"""Daily OHLCV from CSV files: one file, or a folder of `.csv` / `.csv.gz` files.

Each file is inspected on its own, so one folder may mix both layouts:

- long format: a symbol column (named symbol, ticker, code or ric) and any number of symbols;
- one file per symbol: the symbol comes from the file name through `pattern`
  (`{symbol}.csv`, `{symbol}_daily.csv.gz`, ...; `x.csv.gz` also matches a `.csv` pattern),
  or, for a single file, from the `symbol=` option.

Column names are matched case-insensitively, ignoring spaces and punctuation, against the
aliases in `ALIASES` ("Adj Close", "adjusted_close" and "adjclose" are all adj_close).
A file without an adjusted close delivers its close as adj_close. Unknown columns (open
interest, ...) are ignored. The delimiter is a comma or a semicolon, whichever the header
line has more of; a UTF-8 byte-order mark is skipped; gzip is recognised by the `.gz` suffix.

Values go out as received (text, whitespace stripped): the loader validates them and keeps
each row it rejects with its reason. One exception: a dividend or split of 0 goes out blank,
since exports such as yfinance's write 0 on every day without the event (the yahoo provider
maps it to NULL too) and a split factor of 0 would otherwise reject the whole row. Dates too are not converted: which forms count as a
date is the loader's decision (today: year first, `2024-01-02`, `2024/01/02`, `20240102`,
optionally with a time), so `01/03/2024`, which could be January or March, reaches the
loader as written and is rejected there rather than guessed. The `start`/`end` filter reads
dates with that same parser (`parse_dates`) and drops only rows whose date parses and falls
outside [start, end]; a row whose date does not parse is always delivered, so the loader
quarantines it instead of it vanishing here.

A file the provider cannot read (no header, no date or close column, no symbol, a row with
more fields than the header) is a `ValueError` naming the file and what is wrong. Reading a
folder, such a file becomes a `FetchFailure` for that file and the other files still load;
a bad row part-way through a file fails the file from that chunk on (the chunks before it
are already delivered). A path that does not exist, or a folder without a single CSV file,
is a `FileNotFoundError`.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

import pandas as pd

from ingest.providers.base import (
    CHUNK_ROWS,
    OPTIONAL_COLUMNS,
    PRICE_COLUMNS,
    FetchFailure,
    FetchItem,
    Provider,
)
from ingest.validate import parse_dates

log = logging.getLogger(__name__)

# Output column -> the header names accepted for it, in order of preference.
ALIASES: dict[str, tuple[str, ...]] = {
    "symbol": ("symbol", "ticker", "code", "ric"),
    "trade_date": ("date", "trade_date", "tradedate", "timestamp", "datetime", "day", "time"),
    "open": ("open", "o", "open price"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "close price", "last"),
    "adj_close": ("adj close", "adjusted close"),
    "volume": ("volume", "vol", "v"),
    "dividend": ("dividend", "dividends", "div"),
    "split_factor": ("split factor", "split", "splits", "split ratio", "stock splits"),
}
_REQUIRED = ["trade_date", "open", "high", "low", "close", "volume"]
_CSV_SUFFIXES = (".csv", ".csv.gz")

# Errors reading a file's bytes: not UTF-8, not gzip, a cut-off gzip, no permission.
_READ_ERRORS = (UnicodeDecodeError, EOFError, OSError, zlib.error)


class CsvFileError(ValueError):
    """A file the provider cannot read; the message names the file and what is wrong."""


def _key(header: str) -> str:
    return re.sub(r"[^0-9a-z]", "", header.lower())


@dataclass(frozen=True)
class _Layout:
    sep: str
    header_lines: int  # lines up to and including the header (blank lines before it count)
    width: int  # fields in the header
    columns: dict[int, str]  # position in the file -> output column
    symbol: str | None  # one file per symbol: every row's symbol; None: long format


class CsvProvider(Provider):
    name = "csv"

    def __init__(
        self, path: str | Path, pattern: str = "{symbol}.csv", symbol: str | None = None
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"csv provider: no such file or folder: {self.path}")
        if symbol is not None and self.path.is_dir():
            raise ValueError(
                f"csv provider: symbol= names the symbol of a single file; {self.path} is a folder"
            )
        self.pattern = pattern
        self.symbol = symbol
        self._name_regex = _pattern_regex(pattern)

    def available_symbols(self) -> list[str]:
        found: set[str] = set()
        for file in self._files():
            try:
                layout = self._inspect(file)
                if layout.symbol is not None:
                    found.add(layout.symbol)
                    continue
                position = _position(layout.columns, "symbol")
                for chunk in _read_chunks(file, layout):
                    found.update(chunk[position].str.strip())
            except CsvFileError as exc:
                if self.path.is_file():
                    raise
                log.warning("skipping %s", exc)
        return sorted({s.upper() for s in found if s})

    def fetch(
        self,
        symbols: Sequence[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> Iterator[FetchItem]:
        wanted = {s.strip().upper() for s in symbols} if symbols else None
        for file in self._files():
            try:
                for frame in self._fetch_file(file, wanted, start, end):
                    frame.attrs["unit"] = file.name  # failures are counted per file
                    yield frame
            except CsvFileError as exc:
                if self.path.is_file():
                    raise
                yield FetchFailure(unit=file.name, error=str(exc))

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        files = sorted(
            p
            for p in self.path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(_CSV_SUFFIXES)
        )
        if not files:
            raise FileNotFoundError(f"csv provider: no .csv or .csv.gz files in {self.path}")
        return files

    def _inspect(self, file: Path) -> _Layout:
        """Delimiter, column positions and symbol of one file, from its header line."""
        header_line, header_lines = _header_line(file)
        if header_line is None:
            raise CsvFileError(f"{file.name}: empty file (no header line)")
        sep = ";" if header_line.count(";") > header_line.count(",") else ","
        headers = [h.strip() for h in next(csv.reader([header_line], delimiter=sep))]
        keys = [_key(h) for h in headers]

        columns: dict[int, str] = {}
        missing = []
        for column, aliases in ALIASES.items():
            position = next((keys.index(_key(a)) for a in aliases if _key(a) in keys), None)
            if position is not None:
                columns[position] = column
            elif column in _REQUIRED:
                missing.append(f"no {column} column (looked for {', '.join(aliases)})")

        symbol = None
        if "symbol" not in columns.values():
            named = self._name_regex.fullmatch(file.name)
            symbol = self.symbol or (named.group("symbol") if named else None)
            if symbol is None:
                missing.insert(
                    0,
                    f"no symbol column (looked for {', '.join(ALIASES['symbol'])}) and the file "
                    f"name does not match the pattern {self.pattern!r} (for a single file, "
                    "pass symbol=)",
                )
        elif self.symbol is not None:
            raise CsvFileError(
                f"{file.name}: symbol={self.symbol!r} is for a file without a symbol column, "
                f"but this file has one ({headers[_position(columns, 'symbol')]})"
            )
        if missing:
            raise CsvFileError(
                f"{file.name}: {', '.join(missing)}; columns found: {', '.join(headers)}"
            )
        return _Layout(
            sep=sep,
            header_lines=header_lines,
            width=len(headers),
            columns=columns,
            symbol=symbol.strip() if symbol else None,
        )

    def _fetch_file(
        self, file: Path, wanted: set[str] | None, start: date | None, end: date | None
    ) -> Iterator[pd.DataFrame]:
        layout = self._inspect(file)
        if layout.symbol is not None and wanted is not None and layout.symbol.upper() not in wanted:
            return
        positions = sorted(layout.columns)
        optional = [c for c in OPTIONAL_COLUMNS if c in layout.columns.values()]
        for chunk in _read_chunks(file, layout):
            frame = chunk[positions].set_axis([layout.columns[p] for p in positions], axis=1)
            for column in frame.columns:
                frame[column] = frame[column].str.strip()
            if layout.symbol is not None:
                frame["symbol"] = layout.symbol
            if "adj_close" not in frame:
                frame["adj_close"] = frame["close"]
            for column in optional:
                # 0 means "no event that day" (yfinance writes it on every row), not a 0 split.
                frame.loc[pd.to_numeric(frame[column], errors="coerce") == 0, column] = ""
            keep = pd.Series(True, index=frame.index)
            if wanted is not None and layout.symbol is None:
                keep &= frame["symbol"].str.upper().isin(wanted)
            if start is not None or end is not None:
                dates = parse_dates(frame["trade_date"])
                # NaT compares False: rows whose date does not parse are kept for the loader.
                if start is not None:
                    keep &= ~(dates < pd.Timestamp(start))
                if end is not None:
                    keep &= ~(dates > pd.Timestamp(end))
            frame = frame.loc[keep, [*PRICE_COLUMNS, *optional]]
            if len(frame):
                yield frame.reset_index(drop=True)


def _position(columns: dict[int, str], column: str) -> int:
    return next(p for p, c in columns.items() if c == column)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """`{symbol}_daily.csv` -> a regex capturing the symbol; a `.gz` suffix is also accepted."""
    if pattern.count("{symbol}") != 1:
        raise ValueError(f"csv provider: pattern must contain {{symbol}} once, got {pattern!r}")
    if not pattern.lower().endswith(_CSV_SUFFIXES):
        raise ValueError(f"csv provider: pattern must end in .csv or .csv.gz, got {pattern!r}")
    before, after = pattern.split("{symbol}")
    gz = "" if after.lower().endswith(".gz") else r"(?:\.gz)?"
    return re.compile(re.escape(before) + r"(?P<symbol>.+?)" + re.escape(after) + gz, re.IGNORECASE)


def _open_text(file: Path) -> IO[str]:
    if file.name.lower().endswith(".gz"):
        return gzip.open(file, "rt", encoding="utf-8-sig", newline="")
    return open(file, encoding="utf-8-sig", newline="")


def _header_line(file: Path) -> tuple[str | None, int]:
    """The first non-blank line (None for a file without one) and how many lines it ends."""
    lines = 0
    try:
        with _open_text(file) as text:
            for line in text:
                lines += 1
                if line.strip():
                    return line.rstrip("\r\n"), lines
    except _READ_ERRORS as exc:
        raise CsvFileError(f"{file.name}: cannot read the header: {exc}") from exc
    return None, lines


def _read_chunks(file: Path, layout: _Layout) -> Iterator[pd.DataFrame]:
    """The file's rows as text ("" for an empty or absent cell), CHUNK_ROWS at a time.

    Columns are the field positions. A row with more fields than the header (a value with
    an unquoted delimiter shifts every column after it) fails the file rather than loading
    shifted values. pandas does not always say so: it raises for most such rows, but turns
    the first column into the index when the first row is the long one, and drops the extra
    fields of a long row that starts a later chunk. One spare column catches the extra field
    in those cases (unless that field is empty and a later one is not: a pandas limitation).
    """
    spare = layout.width
    try:
        reader = pd.read_csv(
            file,
            sep=layout.sep,
            header=None,
            skiprows=layout.header_lines,
            names=range(layout.width + 1),
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            compression="gzip" if file.name.lower().endswith(".gz") else None,
            chunksize=CHUNK_ROWS,
        )
        with reader:
            for chunk in reader:
                if not isinstance(chunk.index, pd.RangeIndex):
                    raise CsvFileError(
                        f"{file.name}: the first data row has more fields than the header "
                        f"({layout.width})"
                    )
                overlong = chunk.index[chunk[spare] != ""]
                if len(overlong):
                    raise CsvFileError(
                        f"{file.name}: data row {overlong[0] + 1} has more fields than the "
                        f"header ({layout.width}); is a value with a {layout.sep!r} unquoted?"
                    )
                yield chunk.drop(columns=spare)
    except pd.errors.ParserError as exc:
        # "Expected 7 fields in line 3, saw 8": pandas counts the spare column as expected.
        counted = re.search(r"in line (\d+), saw (\d+)", str(exc))
        if counted is None:
            raise CsvFileError(f"{file.name}: malformed CSV: {str(exc).strip()}") from exc
        line, fields = counted.groups()
        raise CsvFileError(
            f"{file.name}: line {line} has {fields} fields, the header has {layout.width}; "
            f"is a value with a {layout.sep!r} unquoted?"
        ) from exc
    except _READ_ERRORS as exc:
        raise CsvFileError(f"{file.name}: {exc}") from exc
