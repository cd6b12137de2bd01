"""Bearer-key authentication for the `/api/v1` resources; health is open, and so are the
OpenAPI document and the docs (flask-smorest's own blueprint, which needs no key). A drift
report also opens with a signed link's token instead of a key (api/links.py).

A key is valid while its SHA-256 is in `api.api_keys` and not revoked. Valid hashes are
remembered per worker for `KEY_CACHE_SECONDS`, so a revoked key stops working within that
many seconds; unknown keys are never cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from flask import Flask, current_app, request
from werkzeug.exceptions import Unauthorized
from werkzeug.wrappers import Response

from api import links, queries
from api.db import fetch_all
from api.keys import hash_key

OPEN_ENDPOINTS = frozenset({"health.health"})
_CACHE_KEY = "marketflow_api.key_cache"
_PROTECTED_KEY = "marketflow_api.keyed_blueprints"


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
    if request.endpoint is None or request.blueprint not in current_app.extensions[_PROTECTED_KEY]:
        return
    if request.endpoint in OPEN_ENDPOINTS or request.method == "OPTIONS":
        return
    if request.endpoint == links.REPORT_ENDPOINT and "token" in request.args:
        # A signed link (api/links.py) opens that one report, key or not.
        links.check_report_token(str((request.view_args or {}).get("run_id", "")),
                                 request.args["token"])  # fmt: skip
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
    if not fetch_all(queries.ACTIVE_KEY, (key_hash,)):
        raise Unauthorized(description="invalid or revoked API key")
    cache.remember(key_hash, float(current_app.config["KEY_CACHE_SECONDS"]))


def challenge(response: Response) -> Response:
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="marketflow"'
    return response


def init_app(app: Flask, keyed_blueprints: Iterable[str]) -> None:
    """Every route of `keyed_blueprints` but OPEN_ENDPOINTS needs a valid key."""
    app.extensions[_CACHE_KEY] = KeyCache()
    app.extensions[_PROTECTED_KEY] = frozenset(keyed_blueprints)
    app.before_request(require_key)
    app.after_request(challenge)
