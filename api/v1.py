"""Version 1 of the HTTP API, mounted at `/api/v1`."""

from __future__ import annotations

import gzip
import hashlib
import math
import re
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg2
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    request,
    send_file,
)
from werkzeug.http import http_date, parse_date

from api import champion as champion_mod
from api.db import fetch_all, get_db

bp = Blueprint("v1", __name__, url_prefix="/api/v1")

SIGNAL_VALUES = ("long", "short", "neutral")
MAX_LIMIT = 1000
MAX_SYMBOLS = 500
MAX_SCORE_SYMBOLS = 100
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
SYMBOL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9.\-_^=]{0,19}"
_SYMBOL = re.compile(SYMBOL_PATTERN)
_DIGITS = re.compile(r"[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# The newest trade_date (for one model, or for all of them), and on that date the model
# whose rows were written last: after a champion swap both models may have scored the day.
_LATEST_RUN_SQL = """
select trade_date, model_name, created_at
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
  and (%(symbols)s::text[] is null or symbol = any(%(symbols)s::text[]))
order by rank, symbol
limit %(limit)s
"""

_SYMBOL_HISTORY_SQL = """
select trade_date, symbol, score, rank, signal, model_name, model_version,
       count(*) over () as total
from signals.daily_signals
where symbol = %(symbol)s
  and model_name = %(model)s
  and (%(start)s::date is null or trade_date >= %(start)s::date)
  and (%(end)s::date is null or trade_date <= %(end)s::date)
order by trade_date desc
limit %(limit)s offset %(offset)s
"""

_SYMBOL_KNOWN_SQL = """
select 1 from signals.daily_signals where symbol = %(symbol)s and model_name = %(model)s limit 1
"""

_DRIFT_RUN_SQL = """
select run_id::text as run_id, run_date, reference_start, reference_end, current_start,
       current_end, n_features, n_drifted_features, share_drifted, drift_detected,
       prediction_drift_score, prediction_drifted, report_path, model_name, model_version,
       mlflow_run_id, created_at
from monitoring.drift_runs
where (%(model)s::text is null or model_name = %(model)s)
order by run_date desc, created_at desc
limit 1
"""

_DRIFT_FEATURES_SQL = """
select feature, drifted, score, method, threshold
from monitoring.drift_features
where run_id = %(run_id)s::uuid
order by drifted desc, feature
"""

_LIVE_QUALITY_SQL = """
select run_date, model_name, model_version, label, window_start, window_end, n_days, ic,
       hit_rate, top_k, top_k_return
from monitoring.live_quality
where (%(model)s::text is null or model_name = %(model)s)
order by run_date desc, created_at desc
limit 1
"""

_LAST_RETRAIN_SQL = """
select run_date, model_name, model_version, reasons, requested_at
from monitoring.retrain_requests
where (%(model)s::text is null or model_name = %(model)s)
order by requested_at desc
limit 1
"""

_REPORT_SQL = "select report_path from monitoring.drift_runs where run_id = %(run_id)s::uuid"


# --- caching of the latest signals ----------------------------------------------------------


class SignalsCache:
    """The latest run's stamp (date, model, created_at), trusted for a second or so, and the
    JSON bodies built for it: signals change once a day, so most requests touch no database."""

    def __init__(self) -> None:
        self._stamps: dict[str | None, tuple[float, dict[str, Any] | None]] = {}
        self._bodies: dict[tuple[Any, ...], bytes] = {}
        self._lock = threading.Lock()

    def stamp(self, model: str | None) -> dict[str, Any] | None:
        ttl = float(current_app.config["SIGNALS_CACHE_SECONDS"])
        now = time.monotonic()
        cached = self._stamps.get(model)
        if ttl > 0 and cached is not None and cached[0] > now:
            return cached[1]
        rows = fetch_all(_LATEST_RUN_SQL, {"model": model})
        stamp = rows[0] if rows else None
        with self._lock:
            if len(self._stamps) > 1000:
                self._stamps.clear()
            self._stamps[model] = (now + ttl, stamp)
        return stamp

    def body(self, key: tuple[Any, ...]) -> bytes | None:
        return self._bodies.get(key)

    def keep(self, key: tuple[Any, ...], body: bytes) -> None:
        with self._lock:
            if len(self._bodies) > 512:
                self._bodies.clear()
            self._bodies[key] = body


def _signals_cache() -> SignalsCache:
    cache = current_app.extensions.get("marketflow_api.signals_cache")
    if cache is None:
        cache = current_app.extensions.setdefault("marketflow_api.signals_cache", SignalsCache())
    return cache  # type: ignore[no-any-return]


def _validators(stamp: dict[str, Any], args_key: str) -> tuple[str, datetime]:
    seed = (
        f"{stamp['trade_date']}|{stamp['model_name']}|{stamp['created_at'].isoformat()}|{args_key}"
    )
    etag = hashlib.sha256(seed.encode()).hexdigest()[:32]
    modified = stamp["created_at"].astimezone(UTC).replace(microsecond=0)
    return etag, modified


def _not_modified(etag: str, modified: datetime) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since when both are sent."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or f'"{etag}"' in tags
    since = parse_date(request.headers.get("If-Modified-Since"))
    return since is not None and modified <= since


def _conditional(
    etag: str, modified: datetime, body: bytes | None, gzipped: bool = False
) -> Response:
    if body is None:
        response = Response(status=304)
    else:
        response = Response(body, mimetype="application/json")
        if gzipped:
            response.headers["Content-Encoding"] = "gzip"
    response.headers["ETag"] = f'"{etag}"'
    response.headers["Last-Modified"] = http_date(modified)
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Vary"] = "Accept-Encoding"
    return response


def _wants_gzip() -> bool:
    return bool(request.accept_encodings["gzip"])


# --- routes -----------------------------------------------------------------------------------


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
    signal = _side_arg()
    model = _text_arg("model")
    symbols = _symbols_arg()
    args_key = f"{limit}|{signal}|{model}|{','.join(symbols) if symbols else ''}"

    cache = _signals_cache()
    stamp = cache.stamp(model)
    if stamp is None:
        detail = f"no signals for model {model!r}" if model else "no signals yet"
        abort(404, description=detail)
    etag, modified = _validators(stamp, args_key)
    # The full list is ~70 kB of JSON for 500 symbols, ~10 kB gzipped: clients that accept
    # gzip get the compressed body, compressed once per stamp and query, under its own ETag.
    gzipped = _wants_gzip()
    if gzipped:
        etag += "-gz"
    if _not_modified(etag, modified):
        return _conditional(etag, modified, None)

    body = cache.body((etag,))
    if body is None:
        rows = fetch_all(
            _SIGNALS_SQL,
            {
                "trade_date": stamp["trade_date"],
                "model": stamp["model_name"],
                "signal": signal,
                "symbols": symbols,
                "limit": limit,
            },
        )
        signals = [_signal_json(row) for row in rows]
        payload: dict[str, Any] = {
            "trade_date": stamp["trade_date"].isoformat(),
            "count": len(signals),
            "signals": signals,
        }
        if symbols is not None:
            found = {s["symbol"] for s in signals}
            # A side or limit filter may drop known symbols; only report the ones never scored.
            payload["unknown_symbols"] = (
                [s for s in symbols if s not in found] if signal is None and limit is None else []
            )
        body = current_app.json.dumps(payload).encode()
        if gzipped:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        cache.keep((etag,), body)
    return _conditional(etag, modified, body, gzipped)


@bp.get("/signals/<symbol>")
def symbol_signals(symbol: str) -> Response:
    if not _SYMBOL.fullmatch(symbol):
        abort(400, description=f"symbol must match {SYMBOL_PATTERN}")
    start, end = _date_arg("start"), _date_arg("end")
    # start after end is an empty window, not an error: OpenAPI cannot say it is invalid.
    page = _int_arg("page", 1, 1, 1_000_000)
    page_size = _int_arg("page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    model = _text_arg("model")
    args_key = f"{symbol}|{start}|{end}|{page}|{page_size}|{model}"

    stamp = _signals_cache().stamp(model)
    if stamp is None:
        abort(404, description=f"no signals for symbol {symbol!r}")
    etag, modified = _validators(stamp, args_key)
    if _not_modified(etag, modified):
        return _conditional(etag, modified, None)

    params = {
        "symbol": symbol,
        "model": stamp["model_name"],
        "start": start,
        "end": end,
        "limit": page_size,
        "offset": (page - 1) * page_size,
    }
    rows = fetch_all(_SYMBOL_HISTORY_SQL, params)
    if not rows and not fetch_all(_SYMBOL_KNOWN_SQL, params):
        abort(404, description=f"no signals for symbol {symbol!r}")
    total = int(rows[0]["total"]) if rows else None
    if total is None:  # past the last page: count without the offset
        total = len(fetch_all(_SYMBOL_HISTORY_SQL, {**params, "limit": None, "offset": 0}))
    payload = {
        "symbol": symbol,
        "model_name": stamp["model_name"],
        "page": page,
        "page_size": page_size,
        "total": total,
        "has_more": page * page_size < total,
        "signals": [_signal_json(row) for row in rows],
    }
    return _conditional(etag, modified, current_app.json.dumps(payload).encode())


@bp.get("/models/champion")
def champion_card() -> Response:
    card = champion_mod.model_card()
    if card is None:
        abort(404, description="no champion model yet")
    return jsonify(card)


@bp.get("/models/champion/equity_curve.png")
def champion_equity_curve() -> Response:
    return champion_mod.equity_curve_response()


@bp.post("/score")
def score() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or set(body) - {"symbols"}:
        abort(400, description='the body must be a JSON object {"symbols": ["AAPL", ...]}')
    symbols = body.get("symbols")
    if (
        not isinstance(symbols, list)
        or not 1 <= len(symbols) <= MAX_SCORE_SYMBOLS
        or not all(isinstance(s, str) and _SYMBOL.fullmatch(s) for s in symbols)
    ):
        abort(
            400,
            description=f"symbols must be a list of 1 to {MAX_SCORE_SYMBOLS} symbols "
            f"matching {SYMBOL_PATTERN}",
        )
    symbols = list(dict.fromkeys(symbols))
    return jsonify(champion_mod.score_symbols(get_db(), symbols))


@bp.get("/drift/latest")
def drift_latest() -> Response:
    model = _text_arg("model")
    runs = fetch_all(_DRIFT_RUN_SQL, {"model": model})
    quality = fetch_all(_LIVE_QUALITY_SQL, {"model": model})
    retrain = fetch_all(_LAST_RETRAIN_SQL, {"model": model})
    if not runs and not quality:
        abort(404, description="no drift monitoring runs yet")
    drift = None
    if runs:
        run = runs[0]
        features = fetch_all(_DRIFT_FEATURES_SQL, {"run_id": run["run_id"]})
        drift = {k: _jsonable(v) for k, v in run.items() if k != "report_path"}
        drift["report_url"] = f"{bp.url_prefix}/drift/{run['run_id']}/report"
        drift["features"] = [{k: _jsonable(v) for k, v in f.items()} for f in features]
    return jsonify(
        drift=drift,
        live_quality={k: _jsonable(v) for k, v in quality[0].items()} if quality else None,
        last_retrain_request=(
            {k: _jsonable(v) for k, v in retrain[0].items()} if retrain else None
        ),
    )


@bp.get("/drift/<run_id>/report")
def drift_report(run_id: str) -> Response:
    if not _UUID.fullmatch(run_id):
        abort(400, description="run_id must be a UUID")
    rows = fetch_all(_REPORT_SQL, {"run_id": run_id})
    if not rows:
        abort(404, description=f"no drift run {run_id}")
    path = Path(rows[0]["report_path"])
    if not path.is_file():
        abort(404, description="the report file is gone from this machine")
    return send_file(path, mimetype="text/html")


@bp.get("/openapi.json")
def openapi() -> Response:
    from api.openapi import document

    return jsonify(document())


@bp.get("/docs")
def docs() -> str:
    from api.ui import docs_page

    return docs_page()


# --- helpers ----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or len(raw) > 9 or not low <= int(raw) <= high:
        abort(400, description=f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _side_arg() -> str | None:
    """`side` (the documented name) or `signal` (its first name); both at once must agree."""
    values = {n: request.args.get(n) for n in ("side", "signal") if n in request.args}
    for name, raw in values.items():
        if raw not in SIGNAL_VALUES:
            abort(400, description=f"{name} must be one of: {', '.join(SIGNAL_VALUES)}")
    if len(set(values.values())) > 1:
        abort(400, description="side and signal disagree")
    return next(iter(values.values()), None)


def _symbols_arg() -> list[str] | None:
    raw = request.args.get("symbols")
    if raw is None:
        return None
    symbols = [s.strip() for s in raw.split(",")]
    if (
        not raw.strip()
        or len(symbols) > MAX_SYMBOLS
        or not all(_SYMBOL.fullmatch(s) for s in symbols)
    ):
        abort(
            400,
            description=f"symbols must be 1 to {MAX_SYMBOLS} comma-separated symbols "
            f"matching {SYMBOL_PATTERN}",
        )
    return list(dict.fromkeys(symbols))


def _date_arg(name: str) -> date | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        abort(400, description=f"{name} must be a date YYYY-MM-DD")


def _text_arg(name: str) -> str | None:
    raw = request.args.get(name)
    if raw is not None and (not raw.strip() or len(raw) > 200 or "\x00" in raw):
        abort(400, description=f"{name} must be 1 to 200 characters")
    return raw
