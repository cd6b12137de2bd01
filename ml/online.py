"""On-demand scoring for a few symbols: read their look-back window, score with the champion.

Used by the API's `POST /api/v1/score`. Reads `marts.features_daily` for the given symbols
only: the last `lookback` rows of each, up to the table's latest date, so a sequence model
gets the same input as in batch scoring (see ml.inference). One round trip: the latest date
comes back with the rows.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from psycopg2 import sql

from ml.inference import Champion, score_rows

FEATURES_TABLE = sql.SQL("marts.features_daily")

_LOOKBACK_SQL = sql.SQL(
    """
    with latest as (
        select coalesce(%(day)s::date, max(trade_date)) as day from {table}
    )
    select latest.day, recent.*
    from latest
    left join lateral (
        select symbol, trade_date, {columns}
        from (
            select symbol, trade_date, {columns},
                   row_number() over (partition by symbol order by trade_date desc) as age
            from {table}
            where symbol = any(%(symbols)s)
              and trade_date <= latest.day
              and trade_date > latest.day - %(calendar_days)s
        ) as windowed
        where age <= %(lookback)s
    ) as recent on true
    order by recent.symbol, recent.trade_date
    """
)


_QUERIES: dict[tuple[str, tuple[str, ...]], str] = {}


def _query(conn: Any, features: tuple[str, ...]) -> str:
    """The look-back query for `features`, composed once per feature list and encoding."""
    key = (conn.encoding, features)
    query = _QUERIES.get(key)
    if query is None:
        columns = sql.SQL(", ").join(sql.Identifier(f) for f in features)
        query = _LOOKBACK_SQL.format(columns=columns, table=FEATURES_TABLE).as_string(conn)
        if len(_QUERIES) > 64:
            _QUERIES.clear()
        _QUERIES[key] = query
    return query


def read_lookback(
    conn: Any, symbols: list[str], features: list[str], lookback: int, day: date | None = None
) -> tuple[date | None, pd.DataFrame]:
    """(the day, for each symbol its last `lookback` rows up to it: symbol, trade_date, features).

    `day` defaults to the latest date in the table; None comes back when the table is empty.
    """
    query = _query(conn, tuple(features))
    # A trading day is at most ~1.5 calendar days on average; the margin bounds the scan.
    params = {
        "symbols": list(symbols),
        "day": day,
        "lookback": lookback,
        "calendar_days": 2 * lookback + 14,
    }
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    latest = rows[0][0] if rows else None
    rows = [row[1:] for row in rows if row[1] is not None]
    frame = pd.DataFrame(rows, columns=["symbol", "trade_date", *features])
    if any(frame[f].dtype != "float64" for f in features):
        frame = frame.astype({f: "float64" for f in features})
    return latest, frame


def read_lookback_frame(
    conn: Any, symbols: list[str], features: list[str], lookback: int, day: date
) -> pd.DataFrame:
    """For each symbol, its last `lookback` rows up to `day` (symbol, trade_date, features)."""
    return read_lookback(conn, symbols, features, lookback, day)[1]


def score_symbols(conn: Any, champion: Champion, symbols: list[str]) -> dict[str, Any]:
    """Scores of `symbols` on the latest feature date; symbols without a score are listed."""
    day, frame = read_lookback(conn, symbols, champion.features, champion.lookback)
    if day is None:
        return {"trade_date": None, "scores": [], "unscored_symbols": list(symbols)}
    scored = score_rows(champion, frame, day) if not frame.empty else frame
    by_symbol = dict(zip(scored["symbol"], scored.get("score", []), strict=True))
    return {
        "trade_date": day.isoformat(),
        "scores": [{"symbol": s, "score": float(by_symbol[s])} for s in symbols if s in by_symbol],
        "unscored_symbols": [s for s in symbols if s not in by_symbol],
    }
