"""MarketFlow's HTTP API: a Flask app factory serving signals read from PostgreSQL.

Kept light on purpose: Flask and psycopg2 only; no pandas, torch, mlflow or Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import db, errors, v1
from api.settings import get_api_settings


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; `config` overrides the settings read from the environment."""
    settings = get_api_settings()
    app = Flask(__name__)
    app.config.from_mapping(
        DATABASE_URL=settings.database_url,
        DATABASE_CONNECT_TIMEOUT=settings.connect_timeout,
        DATABASE_STATEMENT_TIMEOUT_MS=settings.statement_timeout_ms,
        DATABASE_POOL_SIZE=settings.pool_size,
    )
    if config:
        app.config.from_mapping(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    db.init_app(app)
    errors.init_app(app)
    app.register_blueprint(v1.bp)
    return app


__all__ = ["create_app"]
