"""On-demand scoring for a few symbols: read their look-back window, score with the champion.

Used by the API's `POST /api/v1/score`. Reads `marts.features_daily` for the given symbols
only: the last `lookback` trading days of each, up to the table's latest date, so a sequence
model gets the same input as in batch scoring (see ml.inference).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from psycopg2 import sql

from ml.inference import Champion, score_rows

FEATURES_TABLE = sql.SQL("marts.features_daily")


def latest_feature_date(conn: Any) -> date | None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("select max(trade_date) from {}").format(FEATURES_TABLE))
        row = cur.fetchone()
    return row[0] if row else None


def read_lookback_frame(
    conn: Any, symbols: list[str], features: list[str], lookback: int, day: date
) -> pd.DataFrame:
    """For each symbol, its last `lookback` rows up to `day` (symbol, trade_date, features)."""
    columns = sql.SQL(", ").join(sql.Identifier(f) for f in features)
    query = sql.SQL(
        """
        select symbol, trade_date, {columns}
        from (
            select symbol, trade_date, {columns},
                   row_number() over (partition by symbol order by trade_date desc) as age
            from {table}
            where symbol = any(%(symbols)s) and trade_date <= %(day)s
              and trade_date > %(day)s::date - %(calendar_days)s
        ) as recent
        where age <= %(lookback)s
        order by symbol, trade_date
        """
    ).format(columns=columns, table=FEATURES_TABLE)
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
    frame = pd.DataFrame(rows, columns=["symbol", "trade_date", *features])
    return frame.astype({f: "float64" for f in features})


def score_symbols(conn: Any, champion: Champion, symbols: list[str]) -> dict[str, Any]:
    """Scores of `symbols` on the latest feature date; symbols without a score are listed."""
    day = latest_feature_date(conn)
    if day is None:
        return {"trade_date": None, "scores": [], "unscored_symbols": list(symbols)}
    frame = read_lookback_frame(conn, symbols, champion.features, champion.lookback, day)
    scored = score_rows(champion, frame, day)
    by_symbol = dict(zip(scored["symbol"], scored["score"].astype(float), strict=True))
    return {
        "trade_date": day.isoformat(),
        "scores": [{"symbol": s, "score": by_symbol[s]} for s in symbols if s in by_symbol],
        "unscored_symbols": [s for s in symbols if s not in by_symbol],
    }
