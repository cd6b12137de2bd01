"""Monitoring glue: drift of the latest features against the champion's training window."""

from __future__ import annotations

from datetime import date

from marketflow.settings import Settings, get_settings
from ml.dataset import FEATURES
from ml.drift import DriftResult, run_drift
from ml.tracking import champion_version, configure

CURRENT_DAYS = 60


def drift_for_champion(
    database_url: str,
    settings: Settings | None = None,
    run_date: date | None = None,
    current_days: int = CURRENT_DAYS,
) -> DriftResult:
    settings = settings or get_settings()
    client = configure(settings)
    champion = champion_version(client, settings.model_name)
    if champion is None:
        raise RuntimeError(f"model {settings.model_name!r} has no @champion: nothing to monitor")
    params = client.get_run(champion.run_id).data.params
    reference = (date.fromisoformat(params["train_start"]), date.fromisoformat(params["train_end"]))
    return run_drift(
        database_url,
        reference_window=reference,
        current_days=current_days,
        features=FEATURES,
        reports_dir=settings.reports_dir,
        model_name=settings.model_name,
        model_version=str(champion.version),
        mlflow_run_id=champion.run_id,
        run_date=run_date,
        tracking_uri=settings.mlflow_tracking_uri,
    )
