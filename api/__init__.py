"""MarketFlow's HTTP API: a Flask app factory serving signals read from PostgreSQL.

Kept light on purpose: Flask and psycopg2 at import time; no pandas, torch, mlflow or
Airflow. Only the model card and the on-demand scoring routes import MLflow, lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import auth, db, errors, ui, v1
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
        MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri,
        MLFLOW_UI_URL=settings.mlflow_ui_url,
        MODEL_NAME=settings.model_name,
        DATA_DIR=settings.data_dir,
        KEY_CACHE_SECONDS=settings.key_cache_seconds,
        SIGNALS_CACHE_SECONDS=settings.signals_cache_seconds,
        CHAMPION_CHECK_SECONDS=settings.champion_check_seconds,
    )
    if config:
        app.config.from_mapping(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    db.init_app(app)
    errors.init_app(app)
    auth.init_app(app)
    app.register_blueprint(v1.bp)
    app.register_blueprint(ui.bp)
    return app


__all__ = ["create_app"]
