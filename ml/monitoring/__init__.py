"""Monitoring of the champion: drift (Evidently), its SQL, live quality, the retrain rule, and
the daily `monitor` that ties them together (ml.monitoring.monitor)."""
