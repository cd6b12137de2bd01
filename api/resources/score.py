"""`POST /api/v1/score`: scores on the latest feature date from the champion held in memory."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from api import champion
from api.db import get_db
from api.openapi import URL_PREFIX, Blueprint
from api.resources.errors import documents_errors
from api.schemas import ScoreRequestSchema, ScoresSchema

blp = Blueprint("score", __name__, url_prefix=URL_PREFIX, description="On-demand scoring")


@blp.post("/score")
@blp.arguments(ScoreRequestSchema)
@blp.response(200, ScoresSchema, description="Scores")
@documents_errors(blp, 401, 404, 503)
def score(body: dict[str, Any]) -> Response:
    """Score symbols now on the latest feature date with the champion"""
    symbols = list(dict.fromkeys(body["symbols"]))
    return jsonify(champion.score_symbols(get_db(), symbols))
