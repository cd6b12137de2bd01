"""MLflow's server killed (SIGKILL) while a training runs: the training fails loudly, and the
champion, the published signals and what the API serves are unchanged afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import yaml

from tests.api.api_test_helpers import API_ROLE, as_role, free_port
from tests.ml.conftest import TINY_CONFIG

MLFLOW = Path(sys.executable).with_name("mlflow")


class MlflowServer:
    """`mlflow server` on a free port over a SQLite store that outlives a kill."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
                "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", "1"]  # fmt: skip
        log = (self.root / "server.log").open("a")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("mlflow server did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its uvicorn workers
            self.proc.wait()


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _signals(url: str, model: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select trade_date, symbol, score, rank, model_version from"
                    " signals.daily_signals where model_name = %s order by 1, 2", (model,))  # fmt: skip
        rows = cur.fetchall()
    conn.close()
    return rows


def test_mlflow_killed_during_training_fails_it_loudly_and_changes_nothing(
    market_url: str,
    mlflow_server: MlflowServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient

    from api import create_app
    from api.keys import create_key
    from ml.registry.card import CHAMPION
    from ml.scoring import score_latest
    from ml.train import train

    model = f"signal_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MARKETFLOW_MODEL_NAME", model)
    monkeypatch.setenv("MARKETFLOW_MLFLOW_EXPERIMENT", f"experiment_{model}")
    monkeypatch.setenv("MARKETFLOW_DATA_DIR", str(tmp_path / "data"))
    # The client's own retries (7, with back-off) would stretch the failure over minutes.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    config = tmp_path / "models.yaml"
    config.write_text(
        yaml.safe_dump({**TINY_CONFIG, "models": {"ridge": TINY_CONFIG["models"]["ridge"]}})
    )

    first = train(market_url, config_path=config)
    assert first.promoted and first.version == "1"
    score_latest(market_url)
    signals = _signals(market_url, model)
    assert signals

    def kill_mlflow(fold: int, metrics: dict[str, float]) -> None:
        mlflow_server.kill()

    started = time.monotonic()
    with pytest.raises(Exception) as failure:
        train(market_url, config_path=config, on_fold=kill_mlflow, force=True)
    elapsed = time.monotonic() - started
    message = str(failure.value)
    assert f"127.0.0.1:{mlflow_server.port}" in message, message
    assert elapsed < 120, f"the failed training took {elapsed:.0f} s to say so"

    mlflow_server.start()  # the same store: what the killed server had committed
    client = MlflowClient(mlflow_server.uri)
    assert client.get_model_version_by_alias(model, CHAMPION).version == "1"
    assert [v.version for v in client.search_model_versions(f"name = '{model}'")] == ["1"]
    assert _signals(market_url, model) == signals

    # The API (as its read-only role) still serves version 1 and scores with it.
    _, key = create_key(market_url, f"drill-{model}")
    app = create_app({"TESTING": True, "DATABASE_URL": as_role(market_url, API_ROLE),
                      "MLFLOW_TRACKING_URI": mlflow_server.uri, "MODEL_NAME": model,
                      "CHAMPION_CHECK_SECONDS": 0})  # fmt: skip
    client_api = app.test_client()
    client_api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    card = client_api.get("/api/v1/models/champion")
    assert card.status_code == 200, card.get_json()
    assert card.get_json()["version"] == "1"
    scored = client_api.post("/api/v1/score", json={"symbols": ["AAPL"]})
    assert scored.status_code == 200, scored.get_json()
    assert scored.get_json()["model_version"] == "1"
