"""MarketFlow's HTTP API: a Flask app factory serving signals read from PostgreSQL.

Kept light on purpose: Flask and psycopg2 at import time; no pandas, torch, mlflow or
Airflow. Only the model card and the on-demand scoring routes import MLflow, lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import auth, db, errors, openapi, pages
from api.resources import BLUEPRINTS
from core.settings import get_settings


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; `config` overrides the settings read from the environment."""
    settings = get_settings()
    api = settings.api
    app = Flask(__name__)
    app.config.from_mapping(
        DATABASE_URL=api.database_url,
        DATABASE_CONNECT_TIMEOUT=api.connect_timeout,
        DATABASE_READ_TIMEOUT=api.read_timeout,
        DATABASE_STATEMENT_TIMEOUT_MS=api.statement_timeout_ms,
        DATABASE_POOL_SIZE=api.pool_size,
        MLFLOW_TRACKING_URI=settings.mlflow.tracking_uri,
        MLFLOW_UI_URL=settings.mlflow.ui_url,
        MODEL_NAME=settings.mlflow.model_name,
        DATA_DIR=str(settings.data_dir),
        KEY_CACHE_SECONDS=api.key_cache_seconds,
        SIGNALS_CACHE_SECONDS=api.signals_cache_seconds,
        CHAMPION_CHECK_SECONDS=api.champion_check_seconds,
        # No request of this API needs more (a score request of every symbol is ~10 KB);
        # larger bodies get 413 before anything reads them.
        MAX_CONTENT_LENGTH=64 * 1024,
        PUBLIC_PAGE=api.public_page,
        PAGE_RATE_LIMIT=api.page_rate_limit,
        RATELIMIT_STORAGE_URI=api.rate_limit_storage,
        LINK_SECRET=api.link_secret.get_secret_value() if api.link_secret else None,
        LINK_SECONDS=api.link_seconds,
        **openapi.openapi_config("MarketFlow signals API"),
    )
    if config:
        app.config.from_mapping(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    db.init_app(app)
    errors.init_app(app)
    auth.init_app(app, keyed_blueprints=[blp.name for blp in BLUEPRINTS])
    smorest = openapi.init_app(app)
    for blp in BLUEPRINTS:
        smorest.register_blueprint(blp)
    pages.init_app(app)
    return app


__all__ = ["create_app"]
