"""On-demand scoring for a few symbols: read their look-back window, score with the champion.

Used by the API's `POST /api/v1/score`. Reads `marts.features_daily` for the given symbols
only, through the look-back reader batch scoring uses (ml.data.lookback): the last `lookback`
rows of each, up to the table's latest date, so a sequence model gets the same input as in
batch scoring (see ml.inference).
"""

from __future__ import annotations

from typing import Any

from ml.data.lookback import read_lookback
from ml.inference import Champion, score_rows


def score_symbols(
    conn: Any, champion: Champion, symbols: list[str], run: Any = None
) -> dict[str, Any]:
    """Scores of `symbols` on the latest feature date; symbols without a score are listed.
    `run`: how the look-back query runs (ml.data.lookback.read_lookback)."""
    day, frame = read_lookback(
        conn, champion.features, champion.lookback, symbols=symbols, bounded=True, run=run
    )
    if day is None:
        return {"trade_date": None, "scores": [], "unscored_symbols": list(symbols)}
    scored = score_rows(champion, frame, day) if not frame.empty else frame
    by_symbol = dict(zip(scored["symbol"], scored.get("score", []), strict=True))
    return {
        "trade_date": day.isoformat(),
        "scores": [{"symbol": s, "score": float(by_symbol[s])} for s in symbols if s in by_symbol],
        "unscored_symbols": [s for s in symbols if s not in by_symbol],
    }
