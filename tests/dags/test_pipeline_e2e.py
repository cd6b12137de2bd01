"""The whole DAG chain through real Airflow runs (`dag.test()`), real dbt, real Great
Expectations, a real MLflow store and Evidently, on the built-in sample data; then the API."""

from __future__ import annotations

import psycopg2
import pytest

from core.settings import Settings
from tests.helpers import asset_events

pytestmark = pytest.mark.e2e

CHAIN = [
    "marketflow_features",
    "marketflow_training",
    "marketflow_scoring",
    "marketflow_monitoring",
]


def _task_states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_sample_data_flows_from_ingest_to_api(dag_runner, database_url, mlflow_store, airflow_db):
    dag_runner.configure(MARKETFLOW_DATABASE_URL=database_url, **mlflow_store)

    run = dag_runner(
        "marketflow_ingest", {"provider": "sample", "start": "2000-01-01", "end": "2013-12-31"}
    )
    assert str(run.state) == "success", _task_states(run)
    assert asset_events("raw_prices") >= 1

    for dag_id in CHAIN:
        run = dag_runner(dag_id)
        assert str(run.state) == "success", f"{dag_id}: {_task_states(run)}"

    for asset in ("features_daily", "model", "daily_signals", "drift_runs"):
        assert asset_events(asset) >= 1, asset
    # Only our Assets: the dbt tasks emit none of their own (Cosmos's emit_datasets off).
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from dags import assets

    ours = {a.name for a in vars(assets).values() if type(a).__name__ == "Asset"}
    with create_session() as session:
        emitted = set(session.scalars(select(AssetModel.name).join(
            AssetEvent, AssetEvent.asset_id == AssetModel.id).distinct()))  # fmt: skip
    assert emitted <= ours and "features_daily" in emitted, emitted

    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from raw.prices")
        assert cur.fetchone()[0] == 12154
        cur.execute("select count(*) from marts.features_daily")
        assert cur.fetchone()[0] == 12154
        cur.execute("select suite, success from monitoring.validation_runs order by id")
        runs = [tuple(r) for r in cur.fetchall()]
        # raw first, features_daily last (it emits the Asset); labels and universe in between,
        # in whichever order their parallel tasks finished.
        assert runs[0] == ("raw_prices", True) and runs[-1] == ("features_daily", True), runs
        assert sorted(runs[1:-1]) == [("labels_daily", True), ("universe_daily", True)], runs
        cur.execute(
            "select count(*), bool_and(report_path like '%.html') from monitoring.drift_runs"
        )
        assert tuple(cur.fetchone()) == (1, True)
    conn.close()

    from mlflow import MlflowClient

    settings = Settings()
    client = MlflowClient(mlflow_store["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias(settings.mlflow.model_name, "champion")

    from api import create_app
    from api.keys import create_key

    _, key = create_key(database_url, "e2e")
    api_url = database_url.replace("//marketflow@", "//marketflow_api@", 1)
    app = create_app({"DATABASE_URL": api_url, "TESTING": True})
    headers = {"Authorization": f"Bearer {key}"}
    resp = app.test_client().get("/api/v1/signals/latest", headers=headers)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["trade_date"] == "2013-03-01"
    assert body["count"] == 5
    assert {s["model_version"] for s in body["signals"]} == {str(champion.version)}
    assert sorted(s["rank"] for s in body["signals"]) == [1, 2, 3, 4, 5]
    _check_readme_examples(app.test_client(), headers)


def _readme_get_examples() -> list[str]:
    """The GET paths of the README's API examples (the curl URL and the backticked paths)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    paths = re.findall(r"http://127\.0\.0\.1:8000(/api/v1/[^'`\s]+)", text)
    paths += re.findall(r"`(/api/v1/[^`\s]+)`", text)
    paths = [p.rstrip(";,.") for p in paths]
    return sorted({p for p in paths if not p.endswith("/docs") and "/score" not in p})


def _check_readme_examples(client, headers) -> None:
    """Every API example in the README returns rows on the demo data (issue 16)."""
    examples = _readme_get_examples()
    assert len(examples) >= 4, examples
    for path in examples:
        resp = client.get(path, headers=headers)
        assert resp.status_code == 200, (path, resp.get_json())
        body = resp.get_json()
        rows = body.get("signals", body.get("features", [body]))
        assert rows, (path, body)
