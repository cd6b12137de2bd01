"""The page for people at `/`: the latest signals, the champion's card, drift.

Rendered on the server from the same read-only data the API serves and open like health: it
shows what the published signals are, not anything an app could not already see with a key,
and a person should not paste a key into a page. Self-contained (inline CSS, no CDN), so it
works on a machine without internet.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template
from werkzeug.exceptions import HTTPException

from api import champion, queries
from api.db import fetch_all

bp = Blueprint("pages", __name__)
PAGE_SIGNALS = 50


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


@bp.get("/")
def home() -> str:
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
        quality=quality[0] if quality else None,
        fmt=_fmt,
    )


@bp.get("/equity_curve.png")
def equity_curve() -> Response:
    return champion.equity_curve_response()


@bp.get("/tear_sheet.html")
def tear_sheet() -> Response:
    return champion.tear_sheet_response()
