"""Version 1 of the HTTP API, mounted at `/api/v1`."""

from __future__ import annotations

import math
import re
from typing import Any

import psycopg2
from flask import Blueprint, Response, abort, jsonify, request

from api.db import fetch_all

bp = Blueprint("v1", __name__, url_prefix="/api/v1")

SIGNAL_VALUES = ("long", "short", "neutral")
MAX_LIMIT = 1000
_DIGITS = re.compile(r"[0-9]+")

# The newest trade_date (for one model, or for all of them), and on that date the model
# whose rows were written last: after a champion swap both models may have scored the day.
_LATEST_RUN_SQL = """
select trade_date, model_name
from signals.daily_signals
where (%(model)s::text is null or model_name = %(model)s)
order by trade_date desc, created_at desc, model_name
limit 1
"""

_SIGNALS_SQL = """
select trade_date, symbol, score, rank, signal, model_name, model_version
from signals.daily_signals
where trade_date = %(trade_date)s
  and model_name = %(model)s
  and (%(signal)s::text is null or signal = %(signal)s)
order by rank, symbol
limit %(limit)s
"""


@bp.get("/health")
def health() -> Response:
    try:
        fetch_all("select 1")
    except psycopg2.Error:
        abort(503, description="database unreachable")
    return jsonify(status="ok", database="ok")


@bp.get("/signals/latest")
def latest_signals() -> Response:
    limit = _limit_arg()
    signal = _choice_arg("signal", SIGNAL_VALUES)
    model = _text_arg("model")

    latest = fetch_all(_LATEST_RUN_SQL, {"model": model})
    if not latest:
        detail = f"no signals for model {model!r}" if model else "no signals yet"
        abort(404, description=detail)
    trade_date, model_name = latest[0]["trade_date"], latest[0]["model_name"]

    rows = fetch_all(
        _SIGNALS_SQL,
        {"trade_date": trade_date, "model": model_name, "signal": signal, "limit": limit},
    )
    signals = [_signal_json(row) for row in rows]
    return jsonify(trade_date=trade_date.isoformat(), count=len(signals), signals=signals)


def _signal_json(row: dict[str, Any]) -> dict[str, Any]:
    score = row["score"]
    return {
        "trade_date": row["trade_date"].isoformat(),
        "symbol": row["symbol"],
        # NaN and infinities are not JSON; Postgres double precision can hold them.
        "score": score if math.isfinite(score) else None,
        "rank": row["rank"],
        "signal": row["signal"],
        "model_name": row["model_name"],
        "model_version": row["model_version"],
    }


def _limit_arg() -> int | None:
    raw = request.args.get("limit")
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        abort(400, description=f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def _choice_arg(name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.args.get(name)
    if raw is not None and raw not in choices:
        abort(400, description=f"{name} must be one of: {', '.join(choices)}")
    return raw


def _text_arg(name: str) -> str | None:
    raw = request.args.get(name)
    if raw is not None and not raw.strip():
        abort(400, description=f"{name} must not be empty")
    return raw
