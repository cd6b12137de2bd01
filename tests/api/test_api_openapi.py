"""api/openapi.py: the document generated from api/schemas.py, and the offline docs page."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from api.openapi import SWAGGER_UI_DIST


@pytest.fixture
def document(app: Flask) -> dict:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_the_docs_page_and_its_assets_come_from_the_app(app: Flask) -> None:
    client = app.test_client()  # no key: the docs are open
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "/api/v1/openapi.json" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert not [a for a in assets if "//" in a]  # nothing from a CDN
    for asset in assets:
        assert asset.startswith("/api/v1/docs/static/")
        response = client.get(asset)
        assert response.status_code == 200, asset
        name = asset.rsplit("/", 1)[1]
        assert response.data == (SWAGGER_UI_DIST / name).read_bytes()
        response.close()


def test_every_operation_documents_its_errors_with_the_error_schema(document: dict) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["detail", "error"] and set(error["properties"]) == {
        "error",
        "detail",
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            codes = set(operation["responses"])
            assert "default" not in codes
            assert "503" in codes, (method, path)
            assert ("401" in codes) == (operation.get("security") != []), (method, path)
            if operation.get("parameters") or "requestBody" in operation:
                assert "400" in codes and "422" not in codes, (method, path)


def test_the_document_says_what_the_arguments_accept(document: dict) -> None:
    latest = document["paths"]["/api/v1/signals/latest"]["get"]
    params = {p["name"]: p for p in latest["parameters"]}
    assert set(params) == {
        "symbols",
        "side",
        "limit",
        "model",
        "If-None-Match",
        "If-Modified-Since",
    }
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert params["side"]["schema"]["enum"] == ["long", "short", "neutral"]
    model = params["model"]["schema"]
    assert (model["minLength"], model["maxLength"]) == (1, 200)
    assert re.fullmatch(model["pattern"], "lstm") and not re.fullmatch(model["pattern"], "a\x00")
    assert not re.fullmatch(model["pattern"], "   ")
    history = document["paths"]["/api/v1/signals/{symbol}"]["get"]
    symbol = next(p for p in history["parameters"] if p["in"] == "path")
    assert symbol["required"] and symbol["schema"]["pattern"].startswith("^[A-Za-z0-9]")
    body = document["components"]["schemas"]["ScoreRequest"]
    assert body["additionalProperties"] is False
    assert (
        body["properties"]["symbols"]["minItems"],
        body["properties"]["symbols"]["maxItems"],
    ) == (
        1,
        100,
    )
    assert document["paths"]["/api/v1/health"]["get"]["security"] == []
    assert document["security"] == [{"bearer": []}]
