"""Every Asset that links MarketFlow's DAGs, defined once."""

from airflow.sdk import Asset

RAW_PRICES = Asset(name="raw_prices", uri="postgres://marketflow/raw/prices", group="marketflow")
FEATURES = Asset(
    name="features_daily", uri="postgres://marketflow/marts/features_daily", group="marketflow"
)
MODEL = Asset(name="model", uri="mlflow://marketflow/models/marketflow_signal", group="marketflow")
SIGNALS = Asset(
    name="daily_signals", uri="postgres://marketflow/signals/daily_signals", group="marketflow"
)
DRIFT = Asset(
    name="drift_runs", uri="postgres://marketflow/monitoring/drift_runs", group="marketflow"
)
# Emitted by monitoring when drift or live-quality decay crosses its thresholds (with a
# cool-down), and by the features DAG while there is no champion yet; the training DAG is
# scheduled on it (and weekly), never on FEATURES.
RETRAIN_REQUEST = Asset(
    name="retrain_request", uri="marketflow://monitoring/retrain_request", group="marketflow"
)
