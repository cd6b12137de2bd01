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
maps it to NULL too) and a split factor of 0 would otherwise reject the whole row. Dates too
are not converted: which forms count as a date is the loader's decision (today: year first,
`2024-01-02`, `2024/01/02`, `20240102`, optionally with a time), so `01/03/2024`, which could
be January or March, reaches the loader as written and is rejected there rather than guessed.
The `start`/`end` filter reads dates with that same parser (`parse_dates`) and drops only rows
whose date parses and falls outside [start, end]; a row whose date does not parse is always
delivered, so the loader quarantines it instead of it vanishing here. A row with fewer fields
than the header is delivered with the missing fields blank (the loader rejects it unless only
ignored columns were missing).

Speed: files are read by Arrow's C++ CSV reader (every column as Arrow text), several files
at a time on a thread pool (decompression and parsing release the GIL), and small files are
packed into frames of CHUNK_ROWS rows, so a folder of one file per symbol costs a few large
frames rather than one small frame per file.

What is read, and how much: only regular files, and only through links that stay inside the
folder (a link to `/etc/shadow`, a FIFO or a device is that file's failure, never opened for
reading); with `allowed_roots`, the path itself must resolve inside one of those folders
(`PermissionError` otherwise). Reads are bounded: the header is looked for in the first
MAX_HEADER_BYTES bytes, a line longer than MAX_LINE_BYTES fails its file, and a file stops
being read after `max_file_bytes` decompressed bytes (a small gzip of blank lines cannot
expand to gigabytes). An error message names the file and the problem and never quotes the
file: column names are listed only when they look like column names.

A file the provider cannot read (no header, no date or close column, no symbol, a row with
more fields than the header, not UTF-8, too large) is a `ValueError` naming the file and what
is wrong. Reading a folder, such a file becomes a `FetchFailure` for that file and the other
files still load. A file of at most READ_WHOLE_BYTES decompressed bytes (about a million
rows) is read whole before any of its rows is delivered, so when it fails none of its rows is
in any frame; a larger file streams, and a bad row part-way through it fails the file from
that chunk on (the chunks before it are already delivered). A path that does not exist, or a
folder without a single CSV file, is a `FileNotFoundError`.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
import stat
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ingest.providers.base import (
    CHUNK_ROWS,
    FetchFailure,
    FetchItem,
    Provider,
)
from ingest.schema import NUMERIC, OPTIONAL_COLUMNS, PRICE_COLUMNS
from ingest.validate import numbers, parse_dates, stripped

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
# Every price column but adj_close, which falls back to close when a file has none.
_REQUIRED = ["trade_date", *(c for c in NUMERIC if c != "adj_close")]
_CSV_SUFFIXES = (".csv", ".csv.gz")

# Bounds on what one file may make the provider read or hold.
MAX_HEADER_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024  # Arrow's block size: a longer line cannot be parsed
MAX_FILE_BYTES = 4 * 1024**3  # decompressed, per file; `max_file_bytes=` changes it
READ_WHOLE_BYTES = 64 * 1024 * 1024
# Files read ahead of the one being delivered; one thread each, at most.
READ_THREADS = max(1, min(4, os.cpu_count() or 1))

_STRING = pa.string()
# A column name worth quoting back in an error (anything else may be a line of a secret).
_PLAUSIBLE_HEADER = re.compile(r"[\w .()%#/&+\-]{0,40}")

# Errors reading a file's bytes: not gzip, a cut-off gzip, no permission.
_READ_ERRORS = (EOFError, OSError, zlib.error)

T = TypeVar("T")


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


@dataclass(frozen=True)
class _Entry:
    """One file of the folder: where to open it, or why it is not read."""

    name: str
    path: Path
    refused: str | None = None


@dataclass
class _Read:
    """A file read whole: its rows ready to deliver (None: too large to read whole)."""

    entry: _Entry
    table: pa.Table | None = None
    failure: CsvFileError | None = None
    symbols: set[str] = field(default_factory=set)


class CsvProvider(Provider):
    name = "csv"

    def __init__(
        self,
        path: str | Path,
        pattern: str = "{symbol}.csv",
        symbol: str | None = None,
        allowed_roots: Sequence[str | Path] | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.path = Path(path)
        if allowed_roots is not None:
            _confine(self.path, allowed_roots)
        if not self.path.exists():
            raise FileNotFoundError(f"csv provider: no such file or folder: {self.path}")
        if symbol is not None and self.path.is_dir():
            raise ValueError(
                f"csv provider: symbol= names the symbol of a single file; {self.path} is a folder"
            )
        self.pattern = pattern
        self.symbol = symbol
        self.max_file_bytes = max_file_bytes
        self._name_regex = _pattern_regex(pattern)

    def available_symbols(self) -> list[str]:
        found: set[str] = set()
        for read in self._read_all(None, None, None, symbols_only=True):
            try:
                if read.failure is not None:
                    raise read.failure
                found |= read.symbols
                if read.table is None and not read.symbols:  # too large to hold: streamed
                    for table in self._stream(read.entry, None, None, None):
                        found.update(pc.unique(table.column("symbol")).to_pylist())
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
        packer = _Packer()
        for read in self._read_all(wanted, start, end):
            if read.failure is not None:
                if self.path.is_file():
                    raise read.failure
                yield FetchFailure(unit=read.entry.name, error=str(read.failure))
            elif read.table is not None:
                yield from packer.add(read.entry.name, read.table)
            else:  # too large to hold: delivered as it is read, after what came before it
                yield from packer.flush()
                try:
                    for table in self._stream(read.entry, wanted, start, end):
                        yield from packer.add(read.entry.name, table)
                        yield from packer.flush()
                except CsvFileError as exc:
                    if self.path.is_file():
                        raise
                    yield FetchFailure(unit=read.entry.name, error=str(exc))
        yield from packer.flush()

    # --- which files ------------------------------------------------------------------

    def _entries(self) -> list[_Entry]:
        if not self.path.is_dir():
            return [_Entry(self.path.name, self.path.resolve())]
        folder = self.path.resolve()
        entries = []
        with os.scandir(folder) as listing:
            for item in sorted(listing, key=lambda e: e.name):
                if item.name.startswith(".") or not item.name.lower().endswith(_CSV_SUFFIXES):
                    continue
                name = _printable(item.name)
                path = Path(item.path)
                if item.is_symlink():
                    target = path.resolve()
                    if not target.is_relative_to(folder):
                        why = "a symbolic link to a file outside the folder; not read"
                        entries.append(_Entry(name, path, f"{name}: {why}"))
                        continue
                    path = target
                if item.is_dir():
                    continue
                if not _is_regular(path):
                    entries.append(_Entry(name, path, f"{name}: not a regular file; not read"))
                    continue
                entries.append(_Entry(name, path))
        if not entries:
            raise FileNotFoundError(f"csv provider: no .csv or .csv.gz files in {self.path}")
        return entries

    # --- reading ------------------------------------------------------------------------

    def _read_all(
        self,
        wanted: set[str] | None,
        start: date | None,
        end: date | None,
        symbols_only: bool = False,
    ) -> Iterator[_Read]:
        """Every file, read whole on the thread pool, in name order."""

        def read(entry: _Entry) -> _Read:
            try:
                return self._read_whole(entry, wanted, start, end, symbols_only)
            except CsvFileError as exc:
                return _Read(entry, failure=exc)

        yield from _in_order(read, self._entries(), READ_THREADS)

    def _read_whole(
        self,
        entry: _Entry,
        wanted: set[str] | None,
        start: date | None,
        end: date | None,
        symbols_only: bool,
    ) -> _Read:
        if entry.refused is not None:
            raise CsvFileError(entry.refused)
        limit = min(self.max_file_bytes, READ_WHOLE_BYTES)
        with _open(entry, self.max_file_bytes) as source:
            layout, body = self._inspect(entry.name, source)
            if symbols_only and layout.symbol is not None:
                return _Read(entry, symbols={layout.symbol})
            if _skipped(layout, wanted):
                return _Read(entry, table=_empty())
            data = _read_rest(source, body, limit)
        if data is None:
            if self.max_file_bytes <= READ_WHOLE_BYTES:
                raise CsvFileError(
                    f"{entry.name}: more than {self.max_file_bytes} bytes once decompressed; "
                    "not read further"
                )
            return _Read(entry)  # streamed by the consumer instead
        raw = _parse(entry.name, layout, data)
        if symbols_only:
            position = _position(layout.columns, "symbol")
            found = pc.unique(stripped(raw.column(position).combine_chunks()))
            return _Read(entry, symbols={s for s in found.to_pylist() if s})
        return _Read(entry, table=self._deliver(raw, layout, wanted, start, end))

    def _stream(
        self, entry: _Entry, wanted: set[str] | None, start: date | None, end: date | None
    ) -> Iterator[pa.Table]:
        """A file too large to hold, CHUNK_ROWS rows at a time."""
        with _open(entry, self.max_file_bytes) as source:
            layout, body = self._inspect(entry.name, source)
            stream = _Chain(body, source)
            check = _RowCheck(layout)
            try:
                reader = pacsv.open_csv(
                    stream,
                    read_options=_read_options(layout),
                    parse_options=_parse_options(layout, check),
                    convert_options=_convert_options(layout),
                )
                pending: list[pa.RecordBatch] = []
                rows = 0
                for batch in reader:
                    check.raise_for_long_rows(entry.name)
                    pending.append(batch)
                    rows += batch.num_rows
                    if rows >= CHUNK_ROWS:
                        raw = pa.Table.from_batches(pending)
                        yield self._deliver(raw, layout, wanted, start, end)
                        pending, rows = [], 0
                check.raise_for_long_rows(entry.name)
                raw = check.with_short_rows(pa.Table.from_batches(pending, reader.schema))
            except pa.ArrowInvalid as exc:
                raise _arrow_error(entry.name, exc) from None
            yield self._deliver(raw, layout, wanted, start, end)

    def _inspect(self, name: str, source: IO[bytes]) -> tuple[_Layout, bytes]:
        """Delimiter, column positions and symbol of one file, from its header line; and the
        bytes read past the header."""
        header, header_lines, body = _header_line(name, source)
        sep = ";" if header.count(";") > header.count(",") else ","
        try:
            headers = [h.strip() for h in next(csv.reader([header], delimiter=sep))]
        except csv.Error as exc:
            raise CsvFileError(f"{name}: the header line is not CSV ({exc})") from None
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
            named = self._name_regex.fullmatch(name)
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
                f"{name}: symbol={self.symbol!r} is for a file without a symbol column, "
                f"but this file has one ({_shown(headers[_position(columns, 'symbol')])})"
            )
        if missing:
            raise CsvFileError(f"{name}: {', '.join(missing)}; {_columns_found(headers)}")
        layout = _Layout(
            sep=sep,
            header_lines=header_lines,
            width=len(headers),
            columns=columns,
            symbol=symbol.strip() if symbol else None,
        )
        return layout, body

    def _deliver(
        self,
        raw: pa.Table,
        layout: _Layout,
        wanted: set[str] | None,
        start: date | None,
        end: date | None,
    ) -> pa.Table:
        """The delivered columns of `raw` (text columns by position), stripped and filtered."""
        columns: dict[str, pa.Array] = {
            column: stripped(raw.column(position).combine_chunks())
            for position, column in sorted(layout.columns.items())
        }
        if layout.symbol is not None:
            columns["symbol"] = pa.repeat(pa.scalar(layout.symbol, _STRING), raw.num_rows)
        columns.setdefault("adj_close", columns["close"])
        optional = [c for c in OPTIONAL_COLUMNS if c in columns]
        for column in optional:
            # 0 means "no event that day" (yfinance writes it on every row), not a 0 split.
            zero = np.nan_to_num(numbers(columns[column]), nan=1.0) == 0
            columns[column] = pc.if_else(pa.array(zero), pa.scalar("", _STRING), columns[column])
        table = pa.table({c: columns[c] for c in [*PRICE_COLUMNS, *optional]})
        keep = np.ones(table.num_rows, dtype=bool)
        if wanted is not None and layout.symbol is None:
            upper = pc.utf8_upper(table.column("symbol"))
            keep &= pc.is_in(upper, pa.array(sorted(wanted))).to_numpy(zero_copy_only=False)
        if start is not None or end is not None:
            dates = parse_dates(_text_series(table.column("trade_date"))).to_numpy()
            # NaT compares False: rows whose date does not parse are kept for the loader.
            if start is not None:
                keep &= ~(dates < np.datetime64(start))
            if end is not None:
                keep &= ~(dates > np.datetime64(end))
        return table if keep.all() else table.filter(pa.array(keep))


# --- frames out ----------------------------------------------------------------------------


class _Packer:
    """Packs the rows of successive files into frames of CHUNK_ROWS rows (the last one
    smaller), each naming the files its rows come from in `attrs["units"]`."""

    def __init__(self) -> None:
        self.tables: list[tuple[str, pa.Table]] = []
        self.rows = 0

    def add(self, unit: str, table: pa.Table) -> Iterator[pd.DataFrame]:
        if table.num_rows:
            self.tables.append((unit, table))
            self.rows += table.num_rows
        while self.rows >= CHUNK_ROWS:
            yield self._frame(CHUNK_ROWS)

    def flush(self) -> Iterator[pd.DataFrame]:
        while self.rows:
            yield self._frame(min(self.rows, CHUNK_ROWS))

    def _frame(self, rows: int) -> pd.DataFrame:
        taken: list[pa.Table] = []
        units: list[str] = []
        need = rows
        while need:
            unit, table = self.tables[0]
            part = table.slice(0, need)
            taken.append(part)
            if not units or units[-1] != unit:
                units.append(unit)
            need -= part.num_rows
            if part.num_rows == table.num_rows:
                self.tables.pop(0)
            else:
                self.tables[0] = (unit, table.slice(part.num_rows))
        self.rows -= rows
        combined = pa.concat_tables(taken, promote_options="default")
        order = [*PRICE_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in combined.column_names)]
        frame: pd.DataFrame = combined.select(order).to_pandas(types_mapper=_text_dtype)
        frame.attrs["units"] = units
        return frame


def _text_dtype(arrow_type: pa.DataType) -> Any:
    return pd.StringDtype("pyarrow") if arrow_type in (_STRING, pa.large_string()) else None


def _text_series(values: pa.ChunkedArray | pa.Array) -> pd.Series:
    return pd.Series(pd.array(values, dtype=pd.StringDtype("pyarrow")))


def _empty() -> pa.Table:
    return pa.table({c: pa.array([], _STRING) for c in PRICE_COLUMNS})


def _skipped(layout: _Layout, wanted: set[str] | None) -> bool:
    return layout.symbol is not None and wanted is not None and layout.symbol.upper() not in wanted


def _in_order(work: Callable[[_Entry], T], items: Iterable[_Entry], threads: int) -> Iterator[T]:
    """work(item) for every item on `threads` threads, results in the items' order; at most
    2 x threads items read ahead of the one being consumed (memory stays bounded)."""
    pending: deque[Future[T]] = deque()
    todo = iter(items)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="csv-read") as pool:
        try:
            for item in todo:
                pending.append(pool.submit(work, item))
                if len(pending) >= 2 * threads:
                    break
            while pending:
                result = pending.popleft().result()
                following = next(todo, None)
                if following is not None:
                    pending.append(pool.submit(work, following))
                yield result
        finally:
            for future in pending:
                future.cancel()


# --- opening, bounded reads ------------------------------------------------------------------


def _confine(path: Path, roots: Sequence[str | Path]) -> None:
    resolved = path.resolve()
    allowed = [Path(root).resolve() for root in roots]
    if not any(resolved.is_relative_to(root) for root in allowed):
        shown = ", ".join(str(root) for root in allowed) or "none configured"
        raise PermissionError(f"csv provider: {path} is outside the allowed data roots ({shown})")


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


class _Bounded(io.RawIOBase):
    """At most `limit` bytes of `inner`; CsvFileError past that."""

    def __init__(self, inner: IO[bytes], limit: int, name: str, file: IO[bytes]) -> None:
        self.inner = inner
        self.file = file  # GzipFile does not close the file it was given
        self.limit = limit
        self.name_shown = name
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self.inner.read(min(len(view), self.limit + 1 - self.total))
        except _READ_ERRORS as exc:
            raise CsvFileError(f"{self.name_shown}: cannot be read: {_reason(exc)}") from None
        self.total += len(data)
        if self.total > self.limit:
            raise CsvFileError(
                f"{self.name_shown}: more than {self.limit} bytes once decompressed; "
                "not read further"
            )
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        self.file.close()
        super().close()


def _open(entry: _Entry, limit: int) -> io.BufferedReader:
    """The file's (decompressed) bytes, opened without following a link and only if it is a
    regular file: a FIFO swapped in after the listing cannot block the read."""
    try:
        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise CsvFileError(f"{entry.name}: cannot be opened: {_reason(exc)}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CsvFileError(f"{entry.name}: not a regular file; not read")
    file: IO[bytes] = os.fdopen(fd, "rb")
    inner: IO[bytes] = file
    if entry.name.lower().endswith(".gz"):
        inner = gzip.GzipFile(fileobj=file, mode="rb")  # type: ignore[assignment]
    return io.BufferedReader(_Bounded(inner, limit, entry.name, file), buffer_size=1024 * 1024)


def _header_line(name: str, source: IO[bytes]) -> tuple[str, int, bytes]:
    """The first non-blank line, how many lines it ends, and the bytes read after it."""
    head = source.read(MAX_HEADER_BYTES)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:] + source.read(3)
    full = len(head) >= MAX_HEADER_BYTES  # there may be more: the header must end in here
    lines = 0
    position = 0
    while position < len(head):
        end = head.find(b"\n", position)
        line = head[position:] if end < 0 else head[position:end]
        lines += 1
        if line.strip():
            if end < 0 and full:
                raise CsvFileError(
                    f"{name}: the header line is longer than {MAX_HEADER_BYTES} bytes"
                )
            return _header_text(name, line), lines, b"" if end < 0 else head[end + 1 :]
        if end < 0:
            break
        position = end + 1
    if full:
        raise CsvFileError(f"{name}: no header line in the first {MAX_HEADER_BYTES} bytes")
    raise CsvFileError(f"{name}: empty file (no header line)")


def _header_text(name: str, line: bytes) -> str:
    line = line.rstrip(b"\r")
    if re.search(rb"[\x00-\x1f\x7f]", line):
        raise CsvFileError(f"{name}: the header line holds a control character")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise CsvFileError(f"{name}: the header line is not UTF-8 text") from None


def _read_rest(source: IO[bytes], body: bytes, limit: int) -> bytes | None:
    """Everything after the header, or None when the file holds more than `limit` bytes."""
    parts = [body]
    total = len(body)
    while True:
        chunk = source.read(min(1024 * 1024, limit + 1 - total))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            return None


class _Chain(io.RawIOBase):
    """`head` bytes, then the rest of `source`."""

    def __init__(self, head: bytes, source: IO[bytes]) -> None:
        self.head = memoryview(head)
        self.source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if len(self.head):
            n = min(len(view), len(self.head))
            view[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.source.read(len(view))
        view[: len(data)] = data
        return len(data)


# --- parsing ----------------------------------------------------------------------------


class _RowCheck:
    """Arrow's handler for rows whose field count is not the header's: a longer row (an
    unquoted delimiter shifts every value after it) fails the file; a shorter one is kept, its
    missing fields blank, for the loader to judge."""

    def __init__(self, layout: _Layout) -> None:
        self.layout = layout
        self.long_row: int | None = None
        self.long_fields = 0
        self.short: list[str] = []

    def __call__(self, row: Any) -> str:
        if row.actual_columns > row.expected_columns:
            if not self.long_fields:
                self.long_row, self.long_fields = row.number, row.actual_columns
        elif row.text.strip():
            self.short.append(row.text)
        return "skip"

    def raise_for_long_rows(self, name: str) -> None:
        if not self.long_fields:
            return
        where = (
            f"line {self.layout.header_lines + self.long_row}"
            if self.long_row is not None and self.long_row > 0
            else "a data row"
        )
        raise CsvFileError(
            f"{name}: {where} has {self.long_fields} fields, the header has {self.layout.width}; "
            f"is a value with a {self.layout.sep!r} unquoted?"
        )

    def with_short_rows(self, table: pa.Table) -> pa.Table:
        if not self.short:
            return table
        width = self.layout.width
        rows = [
            (fields + [""] * width)[:width]
            for fields in csv.reader(self.short, delimiter=self.layout.sep)
        ]
        extra = pa.table({f"f{i}": pa.array([r[i] for r in rows], _STRING) for i in range(width)})
        self.short = []
        return pa.concat_tables([table, extra])


def _names(layout: _Layout) -> list[str]:
    return [f"f{i}" for i in range(layout.width)]


def _read_options(layout: _Layout, use_threads: bool = True) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(
        column_names=_names(layout), use_threads=use_threads, block_size=MAX_LINE_BYTES
    )


def _parse_options(layout: _Layout, check: _RowCheck) -> pacsv.ParseOptions:
    # Blank lines are rows too, so that Arrow's row numbers are line numbers; the check
    # drops them.
    return pacsv.ParseOptions(
        delimiter=layout.sep, invalid_row_handler=check, ignore_empty_lines=False
    )


def _convert_options(layout: _Layout) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types={name: _STRING for name in _names(layout)},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )


def _parse(name: str, layout: _Layout, data: bytes) -> pa.Table:
    """Every field of the rows after the header, as text; the file's own thread, since the
    pool already reads several files at once."""
    check = _RowCheck(layout)
    if len(data) and np.frombuffer(data, dtype=np.uint8).max() >= 0x80:
        try:  # Arrow's row handler cannot be given a row that is not UTF-8
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise CsvFileError(f"{name}: not UTF-8 text") from None
    if not data.strip():
        return check.with_short_rows(pa.table({n: pa.array([], _STRING) for n in _names(layout)}))
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=_read_options(layout, use_threads=False),
            parse_options=_parse_options(layout, check),
            convert_options=_convert_options(layout),
        )
    except pa.ArrowInvalid as exc:
        raise _arrow_error(name, exc) from None
    check.raise_for_long_rows(name)
    return check.with_short_rows(table)


def _arrow_error(name: str, exc: pa.ArrowInvalid) -> CsvFileError:
    """Arrow's message quotes the row; ours names the problem only."""
    text = str(exc)
    if "straddl" in text:
        return CsvFileError(f"{name}: a line is longer than {MAX_LINE_BYTES} bytes")
    if "UTF8" in text or "UTF-8" in text:
        return CsvFileError(f"{name}: not UTF-8 text")
    return CsvFileError(f"{name}: malformed CSV")


# --- messages -------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__


def _printable(text: str) -> str:
    """`text` with anything unprintable escaped (file names reach logs and the batch log)."""
    return text if text.isprintable() else ascii(text)[1:-1]


def _shown(header: str) -> str:
    return header if _PLAUSIBLE_HEADER.fullmatch(header) else "?"


def _columns_found(headers: list[str]) -> str:
    if all(_PLAUSIBLE_HEADER.fullmatch(h) for h in headers):
        return f"columns found: {', '.join(headers)}"
    return f"the first line does not look like a header ({len(headers)} fields, not shown)"


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
