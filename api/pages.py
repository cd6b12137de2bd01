"""The page for people at `/`: the latest signals, the champion's card, drift.

Rendered on the server from the same read-only data the API serves. It needs no key (a person
should not paste a key into a page), so it shows without one what an app sees with one: a
deployment decides whether that is public (`MARKETFLOW_API_PUBLIC_PAGE`, off by default, on in
the local demo stack; 404 JSON when off). Its routes are rate-limited per client address
(Flask-Limiter, `MARKETFLOW_API_PAGE_RATE_LIMIT`; 429 JSON beyond it) and the rendered page is
cached like the JSON routes (`SIGNALS_CACHE_SECONDS`), so anonymous readers cannot crowd out
keyed clients. Self-contained (inline CSS, no CDN), so it works on a machine without internet.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, render_template
from werkzeug.exceptions import HTTPException

from api import champion, links, queries
from api.db import fetch_all
from api.openapi import URL_PREFIX

bp = Blueprint("pages", __name__)
DRIFT_PREFIX = f"{URL_PREFIX}/drift"
PAGE_SIGNALS = 50


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


_CACHE_KEY = "marketflow_api.page"


def init_app(app: Flask) -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(get_remote_address, app=app)
    limiter.limit(lambda: str(app.config["PAGE_RATE_LIMIT"]))(bp)
    app.register_blueprint(bp)


@bp.before_request
def _public_or_404() -> None:
    if not current_app.config["PUBLIC_PAGE"]:
        abort(404, description="the signals page is off on this deployment "
                               "(MARKETFLOW_API_PUBLIC_PAGE); use the API with a key")  # fmt: skip


@bp.get("/")
def home() -> str:
    """The rendered page, reused for SIGNALS_CACHE_SECONDS (per worker)."""
    ttl = float(current_app.config["SIGNALS_CACHE_SECONDS"])
    cached = current_app.extensions.get(_CACHE_KEY)
    now = time.monotonic()
    if cached is not None and now - cached[0] < ttl:
        return str(cached[1])
    page = _render_home()
    current_app.extensions[_CACHE_KEY] = (now, page)
    return page


def _render_home() -> str:
    signals = fetch_all(queries.PAGE_SIGNALS, {"limit": PAGE_SIGNALS})
    drift = fetch_all(queries.PAGE_DRIFT)
    quality = fetch_all(queries.PAGE_QUALITY)
    card: dict[str, Any] | None = None
    card_error = None
    try:
        card = champion.model_card()
    except HTTPException as exc:
        card_error = exc.description
    return render_template(
        "home.html",
        signals=signals,
        card=card,
        card_error=card_error,
        drift=drift[0] if drift else None,
        # The report behind a signed link that expires (api/links.py); None without a secret.
        report_link=links.report_link(drift[0]["run_id"], DRIFT_PREFIX)[0] if drift else None,
        quality=quality[0] if quality else None,
        fmt=_fmt,
    )


@bp.get("/equity_curve.png")
def equity_curve() -> Response:
    return champion.equity_curve_response()


@bp.get("/tear_sheet.html")
def tear_sheet() -> Response:
    return champion.tear_sheet_response()
