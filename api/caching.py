"""HTTP caching of the signals: a per-worker cache of the latest run's stamp and of the JSON
bodies built for it, and the ETag / Last-Modified / 304 logic around them."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, request
from werkzeug.http import http_date, parse_date

from api import queries
from api.db import fetch_all

_KEY = "marketflow_api.signals_cache"


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
        rows = fetch_all(queries.LATEST_RUN, {"model": model})
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


def signals_cache() -> SignalsCache:
    cache = current_app.extensions.get(_KEY)
    if cache is None:
        cache = current_app.extensions.setdefault(_KEY, SignalsCache())
    return cache  # type: ignore[no-any-return]


def validators(stamp: dict[str, Any], args_key: str) -> tuple[str, datetime]:
    """The ETag and Last-Modified of a representation of the run `stamp` for the query."""
    seed = (
        f"{stamp['trade_date']}|{stamp['model_name']}|{stamp['created_at'].isoformat()}|{args_key}"
    )
    etag = hashlib.sha256(seed.encode()).hexdigest()[:32]
    modified = stamp["created_at"].astimezone(UTC).replace(microsecond=0)
    return etag, modified


def not_modified(
    etag: str, modified: datetime, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since when both are sent."""
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or f'"{etag}"' in tags
    since = parse_date(if_modified_since)
    return since is not None and modified <= since


def conditional(
    etag: str, modified: datetime, body: bytes | None, gzipped: bool = False
) -> Response:
    """A 200 with `body`, or a 304 when `body` is None, carrying the validators."""
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


def wants_gzip() -> bool:
    return bool(request.accept_encodings["gzip"])


# Documented on the routes that answer with them.
RESPONSE_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "Changes when the signals change"},
    "Last-Modified": {"schema": {"type": "string"}, "description": "When they were written"},
}
