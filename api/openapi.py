"""The flask-smorest `Api` of `/api/v1`: the OpenAPI document, argument parsing and the docs.

The document at `/api/v1/openapi.json` is generated from the marshmallow schemas in
`api/schemas.py`, the same schemas that parse every route's arguments; a bad argument is a
400 (webargs says 422), and every error keeps the API's `{"error": ..., "detail": ...}` shape
instead of flask-smorest's own. The interactive docs at `/api/v1/docs` are flask-smorest's
Swagger UI page, its JS and CSS served from the `flask-swagger-ui` package: no CDN.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import flask_smorest
import flask_swagger_ui
from flask import Blueprint as FlaskBlueprint
from flask import Flask
from marshmallow import Schema
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from api.errors import handle_http_exception
from api.schemas import ErrorSchema

View = TypeVar("View", bound=Callable[..., Any])


class Decorator(Protocol):
    """A decorator handing back the view it was given."""

    def __call__(self, view: View, /) -> View: ...


URL_PREFIX = "/api/v1"
DOCS_ASSETS_URL = f"{URL_PREFIX}/docs/static/"
# flask-swagger-ui serves this folder itself; we only need its files, under our own route.
SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).with_name("dist")

DESCRIPTION = (
    "Daily trading signals, the champion model, drift monitoring and on-demand scoring. "
    "Every route but health, this document and the docs page needs "
    "`Authorization: Bearer <key>`: create a key with `marketflow api-key create --name NAME` "
    "and paste it under *Authorize*."
)


class ArgumentsParser(FlaskParser):
    """webargs' parser, answering 400 (the API's status for any bad parameter), not 422."""

    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: Any) -> Any:
        # A body nested past the JSON parser's recursion limit is a bad request, not a 500.
        try:
            return super()._raw_load_json(req)
        except RecursionError:
            error = json.JSONDecodeError("the JSON body is nested too deeply", "[", 0)
            return self._handle_invalid_json_error(error, req)


# flask-smorest ships no type hints: these subclasses give its decorators theirs.
class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = ArgumentsParser()

    def get(self, rule: str, **options: Any) -> Decorator:
        decorator: Decorator = super().get(rule, **options)
        return decorator

    def post(self, rule: str, **options: Any) -> Decorator:
        decorator: Decorator = super().post(rule, **options)
        return decorator

    def arguments(self, schema: type[Schema] | Schema, **kwargs: Any) -> Decorator:
        decorator: Decorator = super().arguments(schema, **kwargs)
        return decorator

    def response(self, status_code: int, schema: Any = None, **kwargs: Any) -> Decorator:
        decorator: Decorator = super().response(status_code, schema, **kwargs)
        return decorator

    def alt_response(self, status_code: int, **kwargs: Any) -> Decorator:
        decorator: Decorator = super().alt_response(status_code, **kwargs)
        return decorator

    def doc(self, **kwargs: Any) -> Decorator:
        decorator: Decorator = super().doc(**kwargs)
        return decorator


class Api(flask_smorest.Api):  # type: ignore[misc]
    ERROR_SCHEMA = ErrorSchema
    # Each route documents the errors it can answer; no catch-all `default` response.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def handle_http_exception(self, error: HTTPException) -> WerkzeugResponse:
        return handle_http_exception(error)


def openapi_config(title: str) -> dict[str, Any]:
    """The app settings flask-smorest reads when `Api(app)` is built."""
    return {
        "API_TITLE": title,
        "API_VERSION": "1.0.0",
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": URL_PREFIX,
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": DOCS_ASSETS_URL,
        # No request to validator.swagger.io (the page must work offline); keep the key
        # pasted under Authorize across reloads.
        "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None, "persistAuthorization": True},
        "API_SPEC_OPTIONS": {
            "info": {"description": DESCRIPTION},
            "servers": [{"url": "/"}],
            "security": [{"bearer": []}],
        },
    }


def init_app(app: Flask) -> Api:
    api = Api(app)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    assets = FlaskBlueprint(
        "docs_assets",
        __name__,
        static_folder=str(SWAGGER_UI_DIST),
        static_url_path="",
        url_prefix=DOCS_ASSETS_URL.rstrip("/"),
    )
    app.register_blueprint(assets)
    return api
