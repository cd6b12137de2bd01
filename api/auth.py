"""Bearer-key authentication for `/api/v1`; health, the OpenAPI document and the docs are open.

A key is valid while its SHA-256 is in `api.api_keys` and not revoked. Valid hashes are
remembered per worker for `KEY_CACHE_SECONDS`, so a revoked key stops working within that
many seconds; unknown keys are never cached.
"""

from __future__ import annotations

import threading
import time

from flask import Flask, current_app, request
from werkzeug.exceptions import Unauthorized

from api.db import fetch_all
from api.keys import hash_key

OPEN_ENDPOINTS = frozenset({"v1.health", "v1.openapi", "v1.docs"})
_CACHE_KEY = "marketflow_api.key_cache"

_KEY_SQL = "select key_id from api.api_keys where key_hash = %s and revoked_at is null"


class KeyCache:
    def __init__(self) -> None:
        self._valid_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def is_valid(self, key_hash: str) -> bool:
        return self._valid_until.get(key_hash, 0.0) > time.monotonic()

    def remember(self, key_hash: str, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            if len(self._valid_until) > 10_000:
                self._valid_until.clear()
            self._valid_until[key_hash] = time.monotonic() + seconds


def require_key() -> None:
    if request.endpoint is None or not request.blueprint == "v1":
        return
    if request.endpoint in OPEN_ENDPOINTS or request.method == "OPTIONS":
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(description="an API key is required: Authorization: Bearer <key>")
    if len(token) > 200:
        raise Unauthorized(description="invalid or revoked API key")
    key_hash = hash_key(token)
    cache: KeyCache = current_app.extensions[_CACHE_KEY]
    if cache.is_valid(key_hash):
        return
    if not fetch_all(_KEY_SQL, (key_hash,)):
        raise Unauthorized(description="invalid or revoked API key")
    cache.remember(key_hash, float(current_app.config["KEY_CACHE_SECONDS"]))


def init_app(app: Flask) -> None:
    app.extensions[_CACHE_KEY] = KeyCache()
    app.before_request(require_key)

    @app.after_request
    def _challenge(response):  # type: ignore[no-untyped-def]
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="marketflow"'
        return response
