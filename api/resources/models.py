"""`/api/v1/models/champion`: the champion's model card, its equity curve and tear sheet."""

from __future__ import annotations

from flask import Response, abort, jsonify

from api import champion
from api.openapi import URL_PREFIX, Blueprint
from api.resources.errors import documents_errors
from api.schemas import ModelCardSchema

blp = Blueprint(
    "models", __name__, url_prefix=f"{URL_PREFIX}/models", description="The champion model"
)


@blp.get("/champion")
@blp.response(200, ModelCardSchema, description="Model card")
@documents_errors(blp, 401, 404, 503)
def champion_card() -> Response:
    """The champion's model card"""
    card = champion.model_card()
    if card is None:
        abort(404, description="no champion model yet")
    return jsonify(card)


@blp.get("/champion/equity_curve.png")
@blp.response(200, {"type": "string", "format": "binary"}, content_type="image/png")
@documents_errors(blp, 401, 404, 503)
def champion_equity_curve() -> Response:
    """The champion's walk-forward equity curve"""
    return champion.equity_curve_response()


@blp.get("/champion/tear_sheet.html")
@blp.response(200, {"type": "string"}, content_type="text/html")
@documents_errors(blp, 401, 404, 503)
def champion_tear_sheet() -> Response:
    """The champion's tear sheet: its strategy's returns with and without costs against the
    benchmarks, IC by month, score quintiles (a static HTML page)"""
    return champion.tear_sheet_response()
