"""The configured universe: which symbols the scheduled ingest loads, from when, and which are
expected to have a bar on every trading day.

A universe file is a CSV with a header and one row per symbol::

    symbol,start,active
    AAPL,,true
    META,2012-05-18,true
    ENRN,1990-01-02,false

`start` (optional, ISO date) is the first day loaded for the symbol; `active` (optional,
default true) says whether the symbol is still traded: inactive symbols are neither fetched nor
expected to be fresh, and their history stays. Symbols are upper-cased, as the loader stores
them. A file that breaks any rule is refused whole, every problem named with its line: a typo
must not shrink the universe silently.

`store_universe` keeps the file's content in `raw.universe` (what analysts query and what the
freshness check `monitoring.symbol_freshness` compares `raw.prices` against).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from core.db import connect

SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-^=]{0,31}$")
_TRUE = {"", "1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}
_COLUMNS = ("symbol", "start", "active")


class UniverseError(ValueError):
    """A universe file that cannot be used; the message names every bad line."""


@dataclass(frozen=True)
class Member:
    symbol: str
    start: date | None = None
    active: bool = True


def read_universe(path: str | Path) -> list[Member]:
    """Parse a universe file (see the module docstring); raise UniverseError naming each bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UniverseError(f"universe file {path}: {exc.strerror or exc}") from None
    reader = csv.DictReader(text.splitlines())
    header = [(name or "").strip().lower() for name in reader.fieldnames or []]
    if "symbol" not in header:
        raise UniverseError(f"universe file {path}: no 'symbol' column in the header {header}")
    unknown = [name for name in header if name not in _COLUMNS]
    if unknown:
        raise UniverseError(
            f"universe file {path}: unknown column(s) {unknown}; known: {list(_COLUMNS)}"
        )
    reader.fieldnames = header
    members: list[Member] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        if None in row:  # more fields than the header names
            problems.append(f"line {line}: more fields than the header's {len(header)}")
            continue
        symbol = (row.get("symbol") or "").strip().upper()
        if not symbol and not any((v or "").strip() for v in row.values()):
            continue  # blank line
        if not SYMBOL.match(symbol):
            problems.append(f"line {line}: {symbol!r} is not a ticker symbol")
            continue
        if symbol in seen:
            problems.append(f"line {line}: {symbol} already listed on line {seen[symbol]}")
            continue
        seen[symbol] = line
        start_text = (row.get("start") or "").strip()
        try:
            start = date.fromisoformat(start_text) if start_text else None
        except ValueError:
            problems.append(f"line {line}: start {start_text!r} is not a date (YYYY-MM-DD)")
            continue
        active_text = (row.get("active") or "").strip().lower()
        if active_text not in _TRUE | _FALSE:
            problems.append(f"line {line}: active {active_text!r} is not true/false")
            continue
        members.append(Member(symbol, start, active_text in _TRUE))
    if problems:
        raise UniverseError(f"universe file {path}: " + "; ".join(problems))
    if not members:
        raise UniverseError(f"universe file {path}: lists no symbol")
    return members


def fetch_plan(
    members: Sequence[Member], start: date | None
) -> list[tuple[list[str], date | None]]:
    """The active symbols grouped by the first day to fetch: the later of `start` (the run's)
    and the symbol's own start. One provider call per group; most universes have one."""
    groups: dict[date | None, list[str]] = {}
    for member in members:
        if not member.active:
            continue
        first = member.start
        if start is not None and (first is None or first < start):
            first = start
        groups.setdefault(first, []).append(member.symbol)
    return [
        (symbols, first)
        for first, symbols in sorted(groups.items(), key=lambda kv: kv[0] or date.min)
    ]


def store_universe(database_url: str, members: Sequence[Member], source: str) -> None:
    """Replace raw.universe with `members` in one transaction (readers see old or new)."""
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("lock table raw.universe in exclusive mode")
        cur.execute("delete from raw.universe")
        cur.executemany(
            "insert into raw.universe (symbol, start_date, active, source) values (%s, %s, %s, %s)",
            [(m.symbol, m.start, m.active, source) for m in members],
        )


@dataclass(frozen=True)
class Stale:
    symbol: str
    last_trade_date: date | None
    market_date: date


def stale_symbols(database_url: str) -> list[Stale]:
    """Active universe symbols whose last bar is older than the market's latest bar (the
    latest trade_date of any symbol), from `monitoring.symbol_freshness`."""
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "select symbol, last_trade_date, market_date from monitoring.symbol_freshness"
            " where stale order by symbol"
        )
        return [Stale(*row) for row in cur.fetchall()]
