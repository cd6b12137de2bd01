"""The OpenAPI 3 document of `/api/v1`, written by hand next to the routes it describes."""

from __future__ import annotations

from typing import Any

from api.v1 import (
    DEFAULT_PAGE_SIZE,
    MAX_LIMIT,
    MAX_PAGE_SIZE,
    MAX_SCORE_SYMBOLS,
    SIGNAL_VALUES,
    SYMBOL_PATTERN,
)

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad parameters",
        401: "Missing, invalid or revoked API key",
        404: "Nothing found",
        503: "Database or model registry unreachable",
    }
    return {str(code): _json(_ERROR, text[code]) for code in codes}


_CONDITIONAL_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "Changes when the signals change"},
    "Last-Modified": {"schema": {"type": "string"}, "description": "When they were written"},
}
_CONDITIONAL_PARAMS = [
    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": "If-Modified-Since", "in": "header", "required": False, "schema": {"type": "string"}},
]
_NOT_MODIFIED = {
    "description": "Not modified since the ETag / date sent",
    "headers": _CONDITIONAL_HEADERS,
}
_MODEL_PARAM = {
    "name": "model",
    "in": "query",
    "required": False,
    "description": "A registered model name (default: the model that scored the latest day)",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
        "pattern": "^[^\\x00]*[^\\x00\\s][^\\x00]*$",
    },
}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_DATE = {"type": ["string", "null"], "format": "date"}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    },
    "Signal": {
        "type": "object",
        "required": [
            "trade_date",
            "symbol",
            "score",
            "rank",
            "signal",
            "model_name",
            "model_version",
        ],
        "properties": {
            "trade_date": {"type": "string", "format": "date"},
            "symbol": {"type": "string"},
            "score": _NULLABLE_NUMBER,
            "rank": {"type": "integer"},
            "signal": {"type": "string", "enum": list(SIGNAL_VALUES)},
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
        },
    },
    "LatestSignals": {
        "type": "object",
        "required": ["trade_date", "count", "signals"],
        "properties": {
            "trade_date": {"type": "string", "format": "date"},
            "count": {"type": "integer"},
            "signals": {"type": "array", "items": {"$ref": "#/components/schemas/Signal"}},
            "unknown_symbols": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Asked-for symbols without a signal that day (with `symbols` only)",
            },
        },
    },
    "SymbolSignals": {
        "type": "object",
        "required": ["symbol", "model_name", "page", "page_size", "total", "has_more", "signals"],
        "properties": {
            "symbol": {"type": "string"},
            "model_name": {"type": "string"},
            "page": {"type": "integer"},
            "page_size": {"type": "integer"},
            "total": {"type": "integer"},
            "has_more": {"type": "boolean"},
            "signals": {"type": "array", "items": {"$ref": "#/components/schemas/Signal"}},
        },
    },
    "ModelCard": {
        "type": "object",
        "required": ["name", "version", "run_id", "metrics", "trained_window"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "run_id": {"type": "string"},
            "model": _NULLABLE_STRING,
            "label": _NULLABLE_STRING,
            "label_horizon": {"type": ["integer", "null"]},
            "lookback": {"type": ["integer", "null"]},
            "features": {"type": "array", "items": {"type": "string"}},
            "trained_window": {"type": "object"},
            "test_window": {"type": "object"},
            "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
            "registered_at": _NULLABLE_STRING,
            "mlflow_run_url": _NULLABLE_STRING,
            "equity_curve_url": _NULLABLE_STRING,
        },
    },
    "ScoreRequest": {
        "type": "object",
        "required": ["symbols"],
        "additionalProperties": False,
        "properties": {
            "symbols": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_SCORE_SYMBOLS,
                "items": {"type": "string", "pattern": f"^{SYMBOL_PATTERN}$"},
            }
        },
    },
    "Scores": {
        "type": "object",
        "required": ["model_name", "model_version", "trade_date", "scores", "unscored_symbols"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "trade_date": {"type": "string", "format": "date"},
            "scores": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["symbol", "score"],
                    "properties": {"symbol": {"type": "string"}, "score": {"type": "number"}},
                },
            },
            "unscored_symbols": {"type": "array", "items": {"type": "string"}},
        },
    },
    "DriftStatus": {
        "type": "object",
        "required": ["drift", "live_quality", "last_retrain_request"],
        "properties": {
            "drift": {"type": ["object", "null"]},
            "live_quality": {"type": ["object", "null"]},
            "last_retrain_request": {"type": ["object", "null"]},
        },
    },
}


def document() -> dict[str, Any]:
    symbols_param = {
        "name": "symbols",
        "in": "query",
        "required": False,
        "description": "Comma-separated symbols (at most 500)",
        "schema": {"type": "string", "pattern": f"^{SYMBOL_PATTERN}(,{SYMBOL_PATTERN})*$"},
    }
    side_param = {
        "name": "side",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": list(SIGNAL_VALUES)},
    }
    limit_param = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    }
    date_param = lambda name: {  # noqa: E731
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string", "format": "date"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MarketFlow signals API",
            "version": "1.0.0",
            "description": "Daily trading signals, the champion model, drift monitoring and "
            "on-demand scoring. Every route but health, this document and the docs page needs "
            "`Authorization: Bearer <key>`.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/health": {
                "get": {
                    "summary": "Liveness and database reachability (no key needed)",
                    "security": [],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["status", "database"],
                                "properties": {
                                    "status": {"type": "string"},
                                    "database": {"type": "string"},
                                },
                            },
                            "Healthy",
                        ),
                        **_errors(503),
                    },
                }
            },
            "/api/v1/signals/latest": {
                "get": {
                    "summary": "The latest day's signals, best rank first",
                    "parameters": [
                        symbols_param,
                        side_param,
                        limit_param,
                        _MODEL_PARAM,
                        *_CONDITIONAL_PARAMS,
                    ],
                    "responses": {
                        "200": {
                            **_json({"$ref": "#/components/schemas/LatestSignals"}, "Signals"),
                            "headers": _CONDITIONAL_HEADERS,
                        },
                        "304": _NOT_MODIFIED,
                        **_errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/signals/{symbol}": {
                "get": {
                    "summary": "One symbol's signals, newest first, paginated",
                    "parameters": [
                        {
                            "name": "symbol",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": f"^{SYMBOL_PATTERN}$"},
                        },
                        date_param("start"),
                        date_param("end"),
                        {
                            "name": "page",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                        },
                        {
                            "name": "page_size",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_PAGE_SIZE,
                                "default": DEFAULT_PAGE_SIZE,
                            },
                        },
                        _MODEL_PARAM,
                        *_CONDITIONAL_PARAMS,
                    ],
                    "responses": {
                        "200": {
                            **_json({"$ref": "#/components/schemas/SymbolSignals"}, "Signals"),
                            "headers": _CONDITIONAL_HEADERS,
                        },
                        "304": _NOT_MODIFIED,
                        **_errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/models/champion": {
                "get": {
                    "summary": "The champion's model card",
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/ModelCard"}, "Model card"),
                        **_errors(401, 404, 503),
                    },
                }
            },
            "/api/v1/models/champion/equity_curve.png": {
                "get": {
                    "summary": "The champion's walk-forward equity curve",
                    "responses": {
                        "200": {
                            "description": "PNG",
                            "content": {
                                "image/png": {"schema": {"type": "string", "format": "binary"}}
                            },
                        },
                        **_errors(401, 404, 503),
                    },
                }
            },
            "/api/v1/score": {
                "post": {
                    "summary": "Score symbols now on the latest feature date with the champion",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ScoreRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Scores"}, "Scores"),
                        **_errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/drift/latest": {
                "get": {
                    "summary": "The latest drift run (per feature) and live signal quality",
                    "parameters": [_MODEL_PARAM],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/DriftStatus"}, "Drift"),
                        **_errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/drift/{run_id}/report": {
                "get": {
                    "summary": "A drift run's Evidently HTML report",
                    "parameters": [
                        {
                            "name": "run_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "HTML",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        },
                        **_errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3 document")},
                }
            },
        },
    }
