"""`/api/v1/drift`: the latest drift run with live quality, and a run's HTML report."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

from flask import Response, abort, current_app, jsonify, send_file

from api import links, queries
from api.db import fetch_all
from api.openapi import URL_PREFIX, Blueprint
from api.resources.errors import documents_errors
from api.schemas import (
    DriftRunPathSchema,
    DriftStatusSchema,
    ModelArgsSchema,
    ReportLinkArgsSchema,
)

blp = Blueprint("drift", __name__, url_prefix=f"{URL_PREFIX}/drift", description="Monitoring")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in row.items()}


@blp.get("/latest")
@blp.arguments(ModelArgsSchema, location="query")
@blp.response(200, DriftStatusSchema, description="Drift")
@documents_errors(blp, 401, 404, 503)
def drift_latest(args: dict[str, Any]) -> Response:
    """The latest drift run (per feature) and live signal quality"""
    model = args.get("model")
    runs = fetch_all(queries.DRIFT_RUN, {"model": model})
    quality = fetch_all(queries.LIVE_QUALITY, {"model": model})
    retrain = fetch_all(queries.LAST_RETRAIN, {"model": model})
    if not runs and not quality:
        abort(404, description="no drift monitoring runs yet")
    drift = None
    if runs:
        run = runs[0]
        features = fetch_all(queries.DRIFT_FEATURES, {"run_id": run["run_id"]})
        drift = {k: _jsonable(v) for k, v in run.items() if k != "report_path"}
        drift["report_url"] = f"{blp.url_prefix}/{run['run_id']}/report"
        # The same report for a browser: a signed link that expires (api/links.py).
        drift["report_link"], drift["report_link_expires_at"] = links.report_link(
            run["run_id"], blp.url_prefix
        )
        drift["features"] = [_row_json(f) for f in features]
    return jsonify(
        drift=drift,
        live_quality=_row_json(quality[0]) if quality else None,
        last_retrain_request=_row_json(retrain[0]) if retrain else None,
    )


@blp.get("/<run_id>/report")
@blp.arguments(DriftRunPathSchema, location="path")
@blp.arguments(ReportLinkArgsSchema, location="query")
@blp.response(200, {"type": "string"}, content_type="text/html", description="HTML")
@documents_errors(blp, 401, 404, 503)
def drift_report(path: dict[str, Any], query: dict[str, Any], run_id: str) -> Response:
    """A drift run's Evidently HTML report

    With a key, or with the `token` of a signed link (`report_link` of `/drift/latest`).
    """
    rows = fetch_all(queries.DRIFT_REPORT, {"run_id": run_id})
    if not rows:
        abort(404, description=f"no drift run {run_id}")
    # Only files in this deployment's reports folder: a row naming any other path (a bad
    # write, a hostile one) is not a way to read the machine's files.
    reports = (Path(current_app.config["DATA_DIR"]) / "reports").resolve()
    report = Path(rows[0]["report_path"]).resolve()
    if not report.is_relative_to(reports):
        current_app.logger.warning("drift run %s names a report outside %s", run_id, reports)
        abort(404, description="no report for this drift run in the reports folder")
    if not report.is_file():
        abort(404, description="the report file is gone from this machine")
    return send_file(report, mimetype="text/html")
