"""MarketFlow's settings: one tree, read from the environment once at the edge (the CLI, a DAG
task, the API's app factory) and passed down.

Each section is a `pydantic-settings` class of its own, so every variable keeps the name that
`.env.example` documents (`MARKETFLOW_DATABASE_URL`, `MARKETFLOW_API_BIND`, ...), and the whole
tree can also be set through nested names (`MARKETFLOW_API__BIND`). Nothing here imports a
heavy library: DAG files read it at parse time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt"
# Each slice holds a database connection and a core; past 16 the final per-day ranks and the
# server's connection limit dominate.
MAX_FEATURE_SLICES = 16


def _env(*names: str) -> Any:
    """A field read from the first of `names` that is set (and by its own name when the
    section is built from keyword arguments or a nested variable)."""
    return Field(validation_alias=AliasChoices(*names))


class _Section(BaseSettings):
    # An empty variable means "use the default", as the shell scripts and compose file expect.
    model_config = SettingsConfigDict(
        env_ignore_empty=True, populate_by_name=True, extra="ignore", frozen=True
    )


class DbSettings(_Section):
    """The pipeline's own connection (the owner role) and the superuser bootstrap uses."""

    url: Annotated[str, _env("MARKETFLOW_DATABASE_URL", "url")] = (
        "postgresql://marketflow@127.0.0.1:5432/marketflow"
    )
    # A superuser connection used only to create databases and roles (idempotently).
    admin_url: Annotated[str, _env("MARKETFLOW_ADMIN_URL", "admin_url")] = (
        "postgresql://postgres@127.0.0.1:5432/postgres"
    )


class MlflowSettings(_Section):
    tracking_uri: Annotated[str, _env("MLFLOW_TRACKING_URI", "tracking_uri")] = (
        "http://127.0.0.1:5000"
    )
    experiment: Annotated[str, _env("MARKETFLOW_MLFLOW_EXPERIMENT", "experiment")] = "marketflow"
    model_name: Annotated[str, _env("MARKETFLOW_MODEL_NAME", "model_name")] = "marketflow_signal"
    # Where people open MLflow runs (the API's model card links there); empty: no link.
    ui_url: Annotated[str, _env("MARKETFLOW_API_MLFLOW_UI_URL", "ui_url")] = ""
    # Who this process is to a signed-in MLflow server (MLflow itself reads the same variables).
    username: Annotated[str, _env("MLFLOW_TRACKING_USERNAME", "username")] = ""
    password: Annotated[str, _env("MLFLOW_TRACKING_PASSWORD", "password")] = ""
    # A read-only MLflow identity for loading the champion (batch scoring); the pipeline's own
    # identity (MLFLOW_TRACKING_USERNAME/PASSWORD, read by MLflow itself) writes runs, models
    # and aliases. Empty: load with whatever identity the process has.
    reader_username: Annotated[
        str, _env("MARKETFLOW_MLFLOW_READER_USERNAME", "reader_username")
    ] = ""
    reader_password: Annotated[
        str, _env("MARKETFLOW_MLFLOW_READER_PASSWORD", "reader_password")
    ] = ""


class IngestSettings(_Section):
    provider: Annotated[str, _env("MARKETFLOW_DATA_PROVIDER", "provider")] = "sample"
    # Trading days the scheduled ingest re-reads before its interval (late corrections).
    lookback_days: Annotated[int, _env("MARKETFLOW_INGEST_LOOKBACK_DAYS", "lookback_days")] = 5
    # Share of failed symbols/files above which the ingest task fails.
    max_failed_share: Annotated[
        float, _env("MARKETFLOW_INGEST_MAX_FAILED_SHARE", "max_failed_share")
    ] = 0.2
    # Folders a scheduled csv ingest may read (its `path` Param must resolve inside one), as a
    # JSON list; the CLI reads whatever path its user gives.
    data_roots: Annotated[list[Path], _env("MARKETFLOW_INGEST_DATA_ROOTS", "data_roots")] = [
        REPO_ROOT / ".data",
        REPO_ROOT.parent / "shared" / "data",
    ]
    # The universe file (ingest/universe.py) the scheduled ingest loads; empty: every symbol
    # the provider has. The DAG's `universe` Param and the Airflow Variable
    # `marketflow_universe` override it, in that order.
    universe: Annotated[str, _env("MARKETFLOW_UNIVERSE", "universe")] = ""
    # The Airflow Connection holding the scheduled ingest's provider, its path or its
    # credentials (docs/operations.md); absent: `provider` above, with no options.
    provider_conn_id: Annotated[str, _env("MARKETFLOW_PROVIDER_CONN_ID", "provider_conn_id")] = (
        "marketflow_provider"
    )
    # Decompressed bytes read from one file at most (a small gzip can expand without bound).
    max_file_bytes: Annotated[int, _env("MARKETFLOW_INGEST_MAX_FILE_BYTES", "max_file_bytes")] = (
        4 * 1024**3
    )


class TrainingSettings(_Section):
    # A config other than ml/config/models.yaml (e.g. ml/config/full.yaml on a GPU worker).
    config: Annotated[str, _env("MARKETFLOW_TRAINING_CONFIG", "config")] = ""
    # Celery queue and pool of the GPU step (LocalExecutor ignores queues).
    queue: Annotated[str, _env("MARKETFLOW_TRAINING_QUEUE", "queue")] = "default"
    pool: Annotated[str, _env("MARKETFLOW_TRAINING_POOL", "pool")] = "default_pool"
    # cpu | cuda | empty (cuda when available).
    device: Annotated[str, _env("MARKETFLOW_DEVICE", "device")] = ""
    # Progress bars for training epochs (the CLI turns them on; task logs stay quiet).
    progress: Annotated[bool, _env("MARKETFLOW_PROGRESS", "progress")] = False


class MonitoringSettings(_Section):
    """When monitoring asks for a retrain."""

    # Trading days of recent history compared with the reference (a month: what drift
    # monitoring is asked about; docs/monitoring.md has the calibration).
    current_days: Annotated[int, _env("MARKETFLOW_DRIFT_CURRENT_DAYS", "current_days")] = 20
    # The reference: the last this many calendar days of the champion's training window (the
    # market it learned most recently); 0 = the whole window (years: everything drifts).
    reference_days: Annotated[
        int, _env("MARKETFLOW_DRIFT_REFERENCE_DAYS", "reference_days"), Field(ge=0)
    ] = 365
    # A continuous feature drifts when its normed Wasserstein distance to the reference
    # reaches threshold_margin x the largest distance of one of the reference's own months
    # (ml/monitoring/drift.py reference_thresholds), and never below feature_threshold; a
    # discrete one (<= 20 distinct values) when its PSI reaches psi_threshold.
    threshold_margin: Annotated[
        float, _env("MARKETFLOW_DRIFT_THRESHOLD_MARGIN", "threshold_margin"), Field(gt=0)
    ] = 1.25
    feature_threshold: Annotated[
        float, _env("MARKETFLOW_DRIFT_FEATURE_THRESHOLD", "feature_threshold"), Field(gt=0)
    ] = 0.1
    psi_threshold: Annotated[
        float, _env("MARKETFLOW_DRIFT_PSI_THRESHOLD", "psi_threshold"), Field(gt=0)
    ] = 0.2
    # Rows of the training window drift compares against: a fixed sample of about this many
    # (ml/monitoring/store.py); 0 = every row (years of a real universe: minutes and GBs).
    reference_rows: Annotated[
        int, _env("MARKETFLOW_DRIFT_REFERENCE_ROWS", "reference_rows"), Field(ge=0)
    ] = 50_000
    # Share of drifted features that counts as dataset drift.
    drift_share: Annotated[float, _env("MARKETFLOW_DRIFT_SHARE_THRESHOLD", "drift_share")] = 0.5
    # Drift of the published scores alone is a reason to retrain.
    retrain_on_prediction_drift: Annotated[
        bool, _env("MARKETFLOW_RETRAIN_ON_PREDICTION_DRIFT", "retrain_on_prediction_drift")
    ] = True
    min_live_ic: Annotated[float, _env("MARKETFLOW_MIN_LIVE_IC", "min_live_ic")] = 0.0
    min_hit_rate: Annotated[float, _env("MARKETFLOW_MIN_LIVE_HIT_RATE", "min_hit_rate")] = 0.45
    # Live quality is judged only once this many labelled days exist.
    min_live_days: Annotated[int, _env("MARKETFLOW_MIN_LIVE_DAYS", "min_live_days")] = 10
    live_window_days: Annotated[int, _env("MARKETFLOW_LIVE_WINDOW_DAYS", "live_window_days")] = 20
    top_k: Annotated[int, _env("MARKETFLOW_LIVE_TOP_K", "top_k")] = 10
    cooldown_days: Annotated[int, _env("MARKETFLOW_RETRAIN_COOLDOWN_DAYS", "cooldown_days")] = 5
    # A features rebuild that rewrote the champion's training data further back than this
    # many days before the latest bar (a vendor correction, a re-delivered history) requests
    # a retrain (ml/registry/cadence.py); the daily look-back's rewrites stay inside it.
    correction_days: Annotated[
        int, _env("MARKETFLOW_RETRAIN_CORRECTION_DAYS", "correction_days"), Field(ge=0)
    ] = 30


class ApiSettings(_Section):
    """The signals API. Its default connection is `marketflow_api`, the role that may only read
    `signals`, `monitoring`, `api` (and the marts' look-back window for on-demand scoring)."""

    database_url: Annotated[str, _env("MARKETFLOW_API_DATABASE_URL", "database_url")] = (
        "postgresql://marketflow_api@127.0.0.1:5432/marketflow"
    )
    # Client-side deadlines (seconds): opening a connection, and any one query's answer. A
    # database that accepts connections but answers nothing costs a request at most this
    # long (503 JSON), never a worker (api/db.py).
    connect_timeout: Annotated[
        float, _env("MARKETFLOW_API_DB_CONNECT_TIMEOUT", "connect_timeout")
    ] = 1.5
    read_timeout: Annotated[float, _env("MARKETFLOW_API_DB_READ_TIMEOUT", "read_timeout")] = 1.75
    # Server-side cap on every query (shorter than the read deadline, so the server cancels
    # a slow query and the connection is kept), so a slow query cannot pin a worker.
    statement_timeout_ms: Annotated[
        int, _env("MARKETFLOW_API_DB_STATEMENT_TIMEOUT_MS", "statement_timeout_ms")
    ] = 1500
    # Idle connections kept per worker process between requests.
    pool_size: Annotated[int, _env("MARKETFLOW_API_DB_POOL_SIZE", "pool_size")] = 4
    bind: Annotated[str, _env("MARKETFLOW_API_BIND", "bind")] = "127.0.0.1:8000"
    workers: Annotated[int, _env("MARKETFLOW_API_WORKERS", "workers")] = 2
    # Threads per worker (1: gunicorn's sync worker; more: gthread, with keep-alive); see
    # api/gunicorn.conf.py for why 1 is the default.
    threads: Annotated[int, _env("MARKETFLOW_API_THREADS", "threads")] = 1
    pidfile: Annotated[str | None, _env("MARKETFLOW_API_PIDFILE", "pidfile")] = None
    # gunicorn's control socket for `gunicornc`; off unless a path is given.
    control_socket: Annotated[
        str | None, _env("MARKETFLOW_API_CONTROL_SOCKET", "control_socket")
    ] = None
    # Seconds a valid key, the latest-signals stamp and the champion alias are trusted before
    # the database or the registry is asked again (0: ask every time).
    key_cache_seconds: Annotated[
        float, _env("MARKETFLOW_API_KEY_CACHE_SECONDS", "key_cache_seconds")
    ] = 5.0
    signals_cache_seconds: Annotated[
        float, _env("MARKETFLOW_API_SIGNALS_CACHE_SECONDS", "signals_cache_seconds")
    ] = 1.0
    champion_check_seconds: Annotated[
        float, _env("MARKETFLOW_API_CHAMPION_CHECK_SECONDS", "champion_check_seconds")
    ] = 5.0
    # The page at `/` (top signals, model card, equity curve, tear sheet) needs no key: off
    # unless a deployment turns it on (the local demo stack does); 404 JSON when off.
    public_page: Annotated[bool, _env("MARKETFLOW_API_PUBLIC_PAGE", "public_page")] = False
    # Requests per client address to the page's routes (keyed API routes are not limited),
    # counted per worker with memory:// (a redis:// storage, with the `redis` package, shares
    # the count across workers).
    page_rate_limit: Annotated[str, _env("MARKETFLOW_API_PAGE_RATE_LIMIT", "page_rate_limit")] = (
        "60/minute"
    )
    rate_limit_storage: Annotated[
        str, _env("MARKETFLOW_API_RATE_LIMIT_STORAGE", "rate_limit_storage")
    ] = "memory://"
    # Signs the drift reports' browser links (api/links.py); the same in every worker and
    # across restarts. None: no links, a report needs a key.
    link_secret: Annotated[SecretStr | None, _env("MARKETFLOW_API_LINK_SECRET", "link_secret")] = (
        None
    )
    # How long a signed link opens its report.
    link_seconds: Annotated[int, _env("MARKETFLOW_API_LINK_SECONDS", "link_seconds")] = 3600


class DbtSettings(_Section):
    # Where dbt writes manifest, run results and docs (each test session sets its own, so
    # parallel runs never share partial-parse state); empty: dbt/target.
    target_path: Annotated[str, _env("MARKETFLOW_DBT_TARGET_PATH", "target_path")] = ""
    log_path: Annotated[str, _env("MARKETFLOW_DBT_LOG_PATH", "log_path")] = ""
    # Symbol slices a full build of features_daily (or a large rebuild) runs concurrently:
    # 0 = one per CPU core (see `slices`).
    feature_slices: Annotated[
        int, _env("MARKETFLOW_DBT_FEATURE_SLICES", "feature_slices"), Field(ge=0)
    ] = 0

    @property
    def target(self) -> Path:
        return Path(self.target_path) if self.target_path else DBT_PROJECT_DIR / "target"

    @property
    def slices(self) -> int:
        """feature_slices, or the machine's core count when 0; at most MAX_FEATURE_SLICES."""
        return min(self.feature_slices or os.cpu_count() or 1, MAX_FEATURE_SLICES)

    @property
    def logs(self) -> Path:
        if self.log_path:
            return Path(self.log_path)
        return self.target.parent / "logs" if self.target_path else DBT_PROJECT_DIR / "logs"


class AlertsSettings(_Section):
    """Where failures and retrain decisions are sent (dags/notify.py). Every notification is
    logged and kept in monitoring.notifications; with an SMTP Connection id set, it is also
    mailed through Airflow's SMTP notifier."""

    smtp_conn_id: Annotated[str, _env("MARKETFLOW_ALERTS_SMTP_CONN_ID", "smtp_conn_id")] = ""
    to: Annotated[str, _env("MARKETFLOW_ALERTS_TO", "to")] = ""


class ServicesSettings(_Section):
    """The local stack (`marketflow up`): ports, Airflow's database, its executor."""

    airflow_port: Annotated[int, _env("MARKETFLOW_AIRFLOW_PORT", "airflow_port")] = 8080
    # Airflow's metadata database, on the pipeline's server.
    airflow_database: Annotated[str, _env("MARKETFLOW_AIRFLOW_DATABASE", "airflow_database")] = (
        "airflow"
    )
    # `local` (LocalExecutor, the default) or `celery`: the CeleryExecutor with two workers on
    # the broker below, one consuming the `default` queue, one the `gpu` queue.
    executor: Annotated[Literal["local", "celery"], _env("MARKETFLOW_EXECUTOR", "executor")] = (
        "local"
    )
    celery_broker_url: Annotated[str, _env("MARKETFLOW_CELERY_BROKER_URL", "celery_broker_url")] = (
        "redis://127.0.0.1:6379/0"
    )
    # Task slots of the `default` worker and of the `gpu` worker (one model on a GPU at once).
    worker_concurrency: Annotated[
        int, _env("MARKETFLOW_WORKER_CONCURRENCY", "worker_concurrency")
    ] = 2
    gpu_worker_concurrency: Annotated[
        int, _env("MARKETFLOW_GPU_WORKER_CONCURRENCY", "gpu_worker_concurrency")
    ] = 1
    # Set by `marketflow up` on each local Celery worker: Airflow records its tasks under the
    # host name `<worker_name>@<host>` (marketflow.services.worker_hostname).
    worker_name: Annotated[str, _env("MARKETFLOW_WORKER_NAME", "worker_name")] = ""
    # Celery's Flower UI on this port with the celery executor; 0: not started.
    flower_port: Annotated[int, _env("MARKETFLOW_FLOWER_PORT", "flower_port")] = 0


class Settings(BaseSettings):
    """The whole tree. `Settings()` reads the environment; `Settings(db={"url": ...})` or
    `settings.model_copy(update=...)` build variants in tests."""

    model_config = SettingsConfigDict(
        env_prefix="MARKETFLOW_",
        env_nested_delimiter="__",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    data_dir: Path = REPO_ROOT / ".data"
    db: DbSettings = Field(default_factory=DbSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    dbt: DbtSettings = Field(default_factory=DbtSettings)
    services: ServicesSettings = Field(default_factory=ServicesSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def artifact_root(self) -> Path:
        return self.data_dir / "mlartifacts"


def get_settings() -> Settings:
    """The settings as the environment says now (not cached: tests and the CLI change it)."""
    return Settings()


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables inside the block and put back what was there: for libraries
    that read their configuration from the environment on every call (MLflow's credentials)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
