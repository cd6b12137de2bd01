"""Every Asset that links MarketFlow's DAGs, defined once."""

from airflow.sdk import Asset

RAW_PRICES = Asset("postgres://marketflow/raw/prices", name="raw_prices", group="marketflow")
FEATURES = Asset(
    "postgres://marketflow/marts/features_daily", name="features_daily", group="marketflow"
)
MODEL = Asset("mlflow://marketflow/models/marketflow_signal", name="model", group="marketflow")
SIGNALS = Asset(
    "postgres://marketflow/signals/daily_signals", name="daily_signals", group="marketflow"
)
DRIFT = Asset("postgres://marketflow/monitoring/drift_runs", name="drift_runs", group="marketflow")
