"""`/api/v1/signals`: the latest day's signals and one symbol's history, with HTTP caching."""

from __future__ import annotations

import gzip
import math
from typing import Any

from flask import Response, abort, current_app

from api import caching, queries
from api.db import fetch_all
from api.openapi import URL_PREFIX, Blueprint
from api.resources.errors import documents_errors
from api.schemas import (
    ConditionalHeadersSchema,
    LatestSignalsArgsSchema,
    LatestSignalsSchema,
    SymbolPathSchema,
    SymbolSignalsArgsSchema,
    SymbolSignalsSchema,
)

blp = Blueprint(
    "signals", __name__, url_prefix=f"{URL_PREFIX}/signals", description="Published signals"
)

_NOT_MODIFIED = {
    "description": "Not modified since the ETag / date sent",
    "headers": caching.RESPONSE_HEADERS,
}


def signal_json(row: dict[str, Any]) -> dict[str, Any]:
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


@blp.get("/latest")
@blp.arguments(LatestSignalsArgsSchema, location="query")
@blp.arguments(ConditionalHeadersSchema, location="headers")
@blp.response(200, LatestSignalsSchema, description="Signals", headers=caching.RESPONSE_HEADERS)
@blp.alt_response(304, **_NOT_MODIFIED)
@documents_errors(blp, 401, 404, 503)
def latest_signals(args: dict[str, Any], headers: dict[str, Any]) -> Response:
    """The latest day's signals, best rank first"""
    limit, signal, model = args.get("limit"), args.get("side"), args.get("model")
    symbols: list[str] | None = args.get("symbols")
    args_key = f"{limit}|{signal}|{model}|{','.join(symbols) if symbols else ''}"

    cache = caching.signals_cache()
    stamp = cache.stamp(model)
    if stamp is None:
        detail = f"no signals for model {model!r}" if model else "no signals yet"
        abort(404, description=detail)
    etag, modified = caching.validators(stamp, args_key)
    # The full list is ~70 kB of JSON for 500 symbols, ~10 kB gzipped: clients that accept
    # gzip get the compressed body, compressed once per stamp and query, under its own ETag.
    gzipped = caching.wants_gzip()
    if gzipped:
        etag += "-gz"
    if caching.not_modified(
        etag, modified, headers.get("if_none_match"), headers.get("if_modified_since")
    ):
        return caching.conditional(etag, modified, None)

    body = cache.body((etag,))
    if body is None:
        rows = fetch_all(
            queries.SIGNALS,
            {
                "trade_date": stamp["trade_date"],
                "model": stamp["model_name"],
                "signal": signal,
                "symbols": symbols,
                "limit": limit,
            },
        )
        signals = [signal_json(row) for row in rows]
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
    return caching.conditional(etag, modified, body, gzipped)


@blp.get("/<symbol>")
@blp.arguments(SymbolPathSchema, location="path")
@blp.arguments(SymbolSignalsArgsSchema, location="query")
@blp.arguments(ConditionalHeadersSchema, location="headers")
@blp.response(200, SymbolSignalsSchema, description="Signals", headers=caching.RESPONSE_HEADERS)
@blp.alt_response(304, **_NOT_MODIFIED)
@documents_errors(blp, 401, 404, 503)
def symbol_signals(
    path: dict[str, Any], args: dict[str, Any], headers: dict[str, Any], symbol: str
) -> Response:
    """One symbol's signals, newest first, paginated (any case: aapl is AAPL)"""
    symbol = path["symbol"]  # upper-cased by the schema
    start, end, model = args.get("start"), args.get("end"), args.get("model")
    page, page_size = args["page"], args["page_size"]
    args_key = f"{symbol}|{start}|{end}|{page}|{page_size}|{model}"

    stamp = caching.signals_cache().stamp(model)
    if stamp is None:
        abort(404, description=f"no signals for symbol {symbol!r}")
    etag, modified = caching.validators(stamp, args_key)
    if caching.not_modified(
        etag, modified, headers.get("if_none_match"), headers.get("if_modified_since")
    ):
        return caching.conditional(etag, modified, None)

    params = {
        "symbol": symbol,
        "model": stamp["model_name"],
        "start": start,
        "end": end,
        "limit": page_size,
        "offset": (page - 1) * page_size,
    }
    rows = fetch_all(queries.SYMBOL_HISTORY, params)
    if not rows and not fetch_all(queries.SYMBOL_KNOWN, params):
        abort(404, description=f"no signals for symbol {symbol!r}")
    total = int(rows[0]["total"]) if rows else None
    if total is None:  # past the last page: count without the offset
        total = len(fetch_all(queries.SYMBOL_HISTORY, {**params, "limit": None, "offset": 0}))
    payload = {
        "symbol": symbol,
        "model_name": stamp["model_name"],
        "page": page,
        "page_size": page_size,
        "total": total,
        "has_more": page * page_size < total,
        "signals": [signal_json(row) for row in rows],
    }
    return caching.conditional(etag, modified, current_app.json.dumps(payload).encode())
