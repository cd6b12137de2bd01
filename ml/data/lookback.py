"""The one look-back reader: each symbol's last `lookback` rows of `marts.features_daily` up to a
day, the input a packaged model's contract asks for (see ml.inference).

Batch scoring (ml.scoring) reads every symbol that has a row on the day, in the universe when
`marts.universe_daily` exists; on-demand scoring (ml.online, the API) reads a few named symbols
up to the table's latest date, its scan bounded to recent calendar days. One round trip: the
day read comes back with the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pandas as pd
from psycopg2 import sql

FEATURES_TABLE = sql.SQL("marts.features_daily")

_LOOKBACK_SQL = sql.SQL(
    """
    with latest as (
        select coalesce(%(day)s::date, max(trade_date)) as day from {table}
    )
    select latest.day, recent.*
    from latest
    left join lateral (
        select last_rows.symbol, last_rows.trade_date, {columns}
        from (select s.symbol from ({symbols}) as s where true {universe}) as chosen
        cross join lateral (
            select f.symbol, f.trade_date, {f_columns}
            from {table} f
            where f.symbol = chosen.symbol
              and f.trade_date <= latest.day
              {bound}
            order by f.trade_date desc
            limit %(lookback)s
        ) as last_rows
    ) as recent on true
    order by recent.symbol, recent.trade_date
    """
)
# Each symbol's rows come from the (symbol, trade_date) key's index, newest first, `lookback`
# of them: the read costs the rows it returns, not the length of the history behind them.
_NAMED_SYMBOLS = sql.SQL("select distinct unnest(%(symbols)s::text[]) as symbol")
_SYMBOLS_OF_THE_DAY = sql.SQL("select symbol from {table} where trade_date = latest.day").format(
    table=FEATURES_TABLE
)
_IN_UNIVERSE = sql.SQL(
    "and exists (select 1 from marts.universe_daily u where u.symbol = s.symbol"
    " and u.trade_date = latest.day and u.in_universe)"
)
_BOUND = sql.SQL("and f.trade_date > latest.day - %(calendar_days)s")
_QUERIES: dict[tuple[Any, ...], str] = {}


def _query(conn: Any, features: tuple[str, ...], named: bool, universe: bool, bounded: bool) -> str:
    """The look-back query, composed once per feature list, variant and encoding."""
    key = (conn.encoding, features, named, universe, bounded)
    query = _QUERIES.get(key)
    if query is None:
        empty = sql.SQL("")
        query = _LOOKBACK_SQL.format(
            table=FEATURES_TABLE,
            columns=sql.SQL(", ").join(sql.Identifier(f) for f in features),
            f_columns=sql.SQL(", ").join(sql.Identifier("f", f) for f in features),
            symbols=_NAMED_SYMBOLS if named else _SYMBOLS_OF_THE_DAY,
            universe=_IN_UNIVERSE if universe else empty,
            bound=_BOUND if bounded else empty,
        ).as_string(conn)
        if len(_QUERIES) > 64:
            _QUERIES.clear()
        _QUERIES[key] = query
    return query


def read_lookback(
    conn: Any,
    features: list[str],
    lookback: int,
    *,
    symbols: list[str] | None = None,
    day: date | None = None,
    universe: bool = False,
    bounded: bool = False,
    run: Callable[[str, dict[str, Any]], list[Any]] | None = None,
) -> tuple[date | None, pd.DataFrame]:
    """(the day, for each symbol its last `lookback` rows up to it: symbol, trade_date, features),
    sorted by symbol then date.

    `symbols`: those symbols (default: every symbol with a row on the day); `day`: default the
    latest date in the table (None comes back when the table is empty); `universe`: only symbols
    in `marts.universe_daily` on the day; `bounded`: scan only the last `2 * lookback + 14`
    calendar days (a trading day is at most ~1.5 calendar days on average: the margin bounds
    the scan for the API; a symbol with a longer gap then has too short a window).
    `run(query, params)`: how to run the query and fetch its rows (default: a cursor of
    `conn`; the API passes its own, which has a deadline).
    """
    query = _query(conn, tuple(features), symbols is not None, universe, bounded)
    params = {
        "symbols": list(symbols or ()),
        "day": day,
        "lookback": lookback,
        "calendar_days": 2 * lookback + 14,
    }
    if run is None:
        with conn.cursor() as cur:
            cur.execute(query, params)
            rows = cur.fetchall()
    else:
        rows = run(query, params)
    latest: date | None = rows[0][0] if rows else None
    found = [row[1:] for row in rows if row[1] is not None]
    frame = pd.DataFrame(found, columns=["symbol", "trade_date", *features])
    if any(frame[f].dtype != "float64" for f in features):
        frame = frame.astype({f: "float64" for f in features})
    return latest, frame
