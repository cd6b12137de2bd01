"""Every error leaves the API as JSON: `{"error": <short code>, "detail": <human text>}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg2
import psycopg2.errors
from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from api.db import STALL_BACKOFF_S, DatabaseTimeout


def error_response(status: int, error: str, detail: str) -> Response:
    response = jsonify(error=error, detail=detail)
    response.status_code = status
    return response


def _error_code(exc: HTTPException) -> str:
    # "Method Not Allowed" -> "method_not_allowed"
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def _first_message(messages: Any) -> str | None:
    """The first message in webargs' nested `{location: {field: [message, ...]}}`."""
    if isinstance(messages, str):
        return messages
    if isinstance(messages, Mapping):
        messages = list(messages.values())
    if isinstance(messages, list | tuple):
        for value in messages:
            found = _first_message(value)
            if found:
                return found
    return None


def handle_http_exception(exc: HTTPException) -> WerkzeugResponse:
    # Start from werkzeug's own response to keep its headers (Allow on 405, Retry-After...).
    response = exc.get_response()
    # A bad argument: webargs (through flask-smorest) puts the schema's messages on `data`.
    data = getattr(exc, "data", None) or {}
    detail = _first_message(data.get("messages")) or exc.description or exc.name
    body = jsonify(error=_error_code(exc), detail=detail)
    response.set_data(body.get_data())
    response.content_type = body.content_type
    return response


def handle_query_canceled(exc: psycopg2.errors.QueryCanceled) -> Response:
    current_app.logger.warning("database query canceled: %s", str(exc).strip())
    return error_response(503, "service_unavailable", "database query timed out")


def handle_database_timeout(exc: DatabaseTimeout) -> Response:
    current_app.logger.warning("database stalled: %s", str(exc).strip())
    response = error_response(503, "service_unavailable", "database did not answer in time")
    response.headers["Retry-After"] = str(int(STALL_BACKOFF_S))
    return response


def handle_operational_error(exc: psycopg2.OperationalError) -> Response:
    current_app.logger.warning("database unreachable: %s", str(exc).strip())
    return error_response(503, "service_unavailable", "database unreachable")


def handle_unexpected_error(exc: Exception) -> Response:
    current_app.logger.exception("unhandled error")
    return error_response(500, "internal_server_error", "an unexpected error occurred")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    # QueryCanceled (statement_timeout) is an OperationalError; the most specific handler wins.
    app.register_error_handler(psycopg2.errors.QueryCanceled, handle_query_canceled)
    app.register_error_handler(DatabaseTimeout, handle_database_timeout)
    app.register_error_handler(psycopg2.OperationalError, handle_operational_error)
    app.register_error_handler(Exception, handle_unexpected_error)
