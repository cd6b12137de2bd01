"""schemathesis against /api/v1/openapi.json: generated requests (valid and not) never get a
5xx, and every answer's status, content type and body are the documented ones.

schemathesis needs the app when the module is collected, before fixtures run; the app opens
its database pool and registry client lazily, so the fixture below points it at this session's
database and MLflow store before the first request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from api.db import close_pool
from tests.api.api_test_helpers import seed_demo
from tests.api.conftest import NO_CACHES

app = create_app({"TESTING": True, **NO_CACHES, "CHAMPION_CHECK_SECONDS": 60})
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)

# Not negative_data_rejection: like most HTTP APIs this one ignores query parameters it does
# not know (cache busters, tracking tags) instead of answering 400.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    positive_data_acceptance,
]


@pytest.fixture(scope="module", autouse=True)
def configured_app(
    api_owner_url: str,
    api_database_url: str,
    mlflow_store: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    name = f"st_model_{uuid.uuid4().hex[:8]}"
    seed_demo(api_owner_url, mlflow_store["MLFLOW_TRACKING_URI"], tmp / "artifacts", name,
              reports_dir=tmp / "data" / "reports")  # fmt: skip
    app.config.update(
        DATABASE_URL=api_database_url,
        MLFLOW_TRACKING_URI=mlflow_store["MLFLOW_TRACKING_URI"],
        MODEL_NAME=name,
        DATA_DIR=str(tmp / "data"),
    )
    yield
    close_pool(app)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_honours_its_openapi_document(case: Any, api_key: str) -> None:
    # identity: schemathesis's WSGI transport asks for gzip but does not decode it (an HTTP
    # client does); tests/api/test_api_auth_and_signals.py covers the gzip representation.
    headers = {"Authorization": f"Bearer {api_key}", "Accept-Encoding": "identity"}
    case.call_and_validate(headers=headers, checks=CHECKS)
