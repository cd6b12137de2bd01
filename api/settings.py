"""The API's settings, read from the environment with defaults for a developer machine.

Every variable starts with `MARKETFLOW_API_`. The defaults connect as `marketflow_api`, the
role that may only read `signals`, `monitoring` and `api`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from marketflow.settings import REPO_ROOT

DEFAULT_DATABASE_URL = "postgresql://marketflow_api@127.0.0.1:5432/marketflow"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value or default


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class ApiSettings:
    database_url: str = field(
        default_factory=lambda: _env("MARKETFLOW_API_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    # Seconds to wait for a TCP connection before answering 503.
    connect_timeout: int = field(
        default_factory=lambda: _env_int("MARKETFLOW_API_DB_CONNECT_TIMEOUT", 3)
    )
    # Server-side cap on every query, so a slow query cannot pin a gunicorn worker.
    statement_timeout_ms: int = field(
        default_factory=lambda: _env_int("MARKETFLOW_API_DB_STATEMENT_TIMEOUT_MS", 5000)
    )
    # Idle connections kept per worker process between requests.
    pool_size: int = field(default_factory=lambda: _env_int("MARKETFLOW_API_DB_POOL_SIZE", 4))
    bind: str = field(default_factory=lambda: _env("MARKETFLOW_API_BIND", "127.0.0.1:8000"))
    workers: int = field(default_factory=lambda: _env_int("MARKETFLOW_API_WORKERS", 2))
    # Threads per worker (1: gunicorn's sync worker; more: gthread, with keep-alive); see
    # api/gunicorn.conf.py for why 1 is the default.
    threads: int = field(default_factory=lambda: _env_int("MARKETFLOW_API_THREADS", 1))
    pidfile: str | None = field(
        default_factory=lambda: os.environ.get("MARKETFLOW_API_PIDFILE") or None
    )
    # gunicorn's control socket for `gunicornc`; off unless a path is given.
    control_socket: str | None = field(
        default_factory=lambda: os.environ.get("MARKETFLOW_API_CONTROL_SOCKET") or None
    )

    # MLflow, for the model card and on-demand scoring (imported lazily, only by those routes).
    mlflow_tracking_uri: str = field(
        default_factory=lambda: _env("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    )
    # Where people open MLflow runs (the model card links there); empty: no link.
    mlflow_ui_url: str = field(default_factory=lambda: _env("MARKETFLOW_API_MLFLOW_UI_URL", ""))
    model_name: str = field(
        default_factory=lambda: _env("MARKETFLOW_MODEL_NAME", "marketflow_signal")
    )
    data_dir: str = field(
        default_factory=lambda: _env("MARKETFLOW_DATA_DIR", str(REPO_ROOT / ".data"))
    )
    # Seconds a valid key, the latest-signals stamp and the champion alias are trusted
    # before the database or the registry is asked again (0: ask every time).
    key_cache_seconds: float = field(
        default_factory=lambda: float(_env("MARKETFLOW_API_KEY_CACHE_SECONDS", "5"))
    )
    signals_cache_seconds: float = field(
        default_factory=lambda: float(_env("MARKETFLOW_API_SIGNALS_CACHE_SECONDS", "1"))
    )
    champion_check_seconds: float = field(
        default_factory=lambda: float(_env("MARKETFLOW_API_CHAMPION_CHECK_SECONDS", "5"))
    )


def get_api_settings() -> ApiSettings:
    return ApiSettings()
