"""Settings read from the environment, with defaults that work on a developer machine.

Every variable is documented in `.env.example`. Nothing here imports a heavy library, so
DAG files, the API and the CLI can all read it cheaply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value or default


def with_database(url: str, database: str) -> str:
    """Return `url` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default_factory=lambda: _env(
            "MARKETFLOW_DATABASE_URL", "postgresql://marketflow@127.0.0.1:5432/marketflow"
        )
    )
    # A superuser connection used only to create databases and roles (idempotently).
    admin_url: str = field(
        default_factory=lambda: _env(
            "MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
    )
    mlflow_tracking_uri: str = field(
        default_factory=lambda: _env("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    )
    mlflow_experiment: str = field(
        default_factory=lambda: _env("MARKETFLOW_MLFLOW_EXPERIMENT", "marketflow")
    )
    model_name: str = field(
        default_factory=lambda: _env("MARKETFLOW_MODEL_NAME", "marketflow_signal")
    )
    data_provider: str = field(default_factory=lambda: _env("MARKETFLOW_DATA_PROVIDER", "sample"))
    data_dir: Path = field(
        default_factory=lambda: Path(_env("MARKETFLOW_DATA_DIR", str(REPO_ROOT / ".data")))
    )

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def artifact_root(self) -> Path:
        return self.data_dir / "mlartifacts"


def get_settings() -> Settings:
    return Settings()
