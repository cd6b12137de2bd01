"""`/api/v1/health`: liveness and database reachability, open to all."""

from __future__ import annotations

import psycopg2
from flask import Response, abort, jsonify

from api.db import fetch_all
from api.openapi import URL_PREFIX, Blueprint
from api.resources.errors import documents_errors
from api.schemas import HealthSchema

blp = Blueprint("health", __name__, url_prefix=URL_PREFIX, description="Liveness")


@blp.get("/health")
@blp.doc(security=[])
@blp.response(200, HealthSchema, description="Healthy")
@documents_errors(blp, 503)
def health() -> Response:
    """Liveness and database reachability (no key needed)"""
    try:
        fetch_all("select 1")
    except psycopg2.Error:
        abort(503, description="database unreachable")
    return jsonify(status="ok", database="ok")
