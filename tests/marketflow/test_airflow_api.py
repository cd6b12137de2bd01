"""`marketflow backfill --wait` (and `marketflow demo`) follow their runs through Airflow's REST
API (marketflow/airflow_api.py, the official client), on an Airflow of the test's own: the
api-server, the scheduler and the DAG processor of the local stack."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from core.settings import get_settings
from core.urls import database_name
from ingest.loader import ingest
from marketflow.airflow_api import AirflowApi, AirflowApiError
from marketflow.services import start_all
from tests.api.api_test_helpers import free_port
from tests.helpers import airflow_cli, own_airflow, query

pytestmark = pytest.mark.e2e

MARKETFLOW = str(Path(sys.executable).with_name("marketflow"))
SYMBOLS = ["AAPL", "MSFT"]
START, END = date(2012, 1, 3), date(2012, 3, 30)
STARTED = datetime(2000, 1, 1, tzinfo=UTC)


def test_backfill_wait_follows_the_run_through_the_rest_api(
    make_database, admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_database()
    # The range is loaded and announced already: the triggered run finds nothing new, so its
    # `announce` is skipped and no features run follows (the chain ends there), whatever the
    # scheduled run below loaded.
    assert ingest(url, "sample", SYMBOLS, START, END).rows_inserted > 0
    query(url, "update raw.ingest_batches set announced_at = now()")
    monkeypatch.setenv("MARKETFLOW_DATABASE_URL", url)
    monkeypatch.setenv("MARKETFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MARKETFLOW_AIRFLOW_PORT", str(free_port()))
    monkeypatch.setenv("MARKETFLOW_AIRFLOW_DATABASE", database_name(url) + "_rest_airflow")
    settings = get_settings()
    wanted = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor")

    with own_airflow(settings, admin_url, lambda name: name in wanted) as (env, _url, stack):
        airflow_cli(env, "dags", "reserialize")  # as `marketflow up` does
        start_all(settings, echo=lambda _: None, stack=stack)
        api = AirflowApi.for_stack(settings)
        # The stack's DAGs start unpaused: the ingest DAG's own scheduled run loads the rest of
        # the sample data first. The features DAG paused (through the API), that run's event
        # starts nothing; once it has finished, nothing is pending.
        api.set_paused("marketflow_features", True)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            scheduled = [r for r in api.runs_since(["marketflow_ingest"], STARTED)
                         if r.run_type == "scheduled"]  # fmt: skip
            if scheduled and all(r.state in ("success", "failed") for r in scheduled):
                break
            time.sleep(2)
        before = datetime.now(UTC)
        done = subprocess.run(
            [MARKETFLOW, "backfill", "--provider", "sample", "--symbols", ",".join(SYMBOLS),
             "--start", str(START), "--end", str(END), "--wait", "--timeout", "300"],
            env=os.environ.copy(), capture_output=True, text=True, timeout=420,
        )  # fmt: skip
        runs = api.runs_since(["marketflow_ingest", "marketflow_features"], before)

        wrong = AirflowApi(api.base_url, "admin", "not-the-password")
        with pytest.raises(AirflowApiError, match="refused the sign-in as 'admin'"):
            wrong.runs_since(["marketflow_ingest"], before)
    down = AirflowApi(api.base_url, "admin", "x")
    with pytest.raises(AirflowApiError, match="is the stack up"):
        down.runs_since(["marketflow_ingest"], before)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "no new or changed prices: the pipeline is already up to date" in done.stdout
    [run] = runs  # the one manual ingest run, no features run
    assert (run.dag_id, run.run_type, run.state) == ("marketflow_ingest", "manual", "success")
    assert run.run_id.startswith(f"range__{START}__{END}__") and run.run_id in done.stdout
