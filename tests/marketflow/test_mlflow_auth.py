"""The local stack's MLflow asks for a sign-in: the pipeline's identity writes, the API's and
batch scoring's identity only reads (it cannot move @champion or register a version)."""

from __future__ import annotations

import dataclasses
import json
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from core.settings import get_settings
from marketflow.services import (
    mlflow_identities_file,
    pipeline_mlflow_env,
    services,
    start_all,
    stop_all,
)
from ml.registry.card import champion_version
from ml.registry.tracking import reader_identity
from tests.api.api_test_helpers import free_port


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_the_stacks_mlflow_needs_a_sign_in_and_the_reader_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MARKETFLOW_DATA_DIR", str(tmp_path / "data"))
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    settings = get_settings()
    stack = {svc.name: svc for svc in services(settings)}
    assert stat.S_IMODE(mlflow_identities_file(settings).stat().st_mode) == 0o600
    identities = json.loads(mlflow_identities_file(settings).read_text())
    # The stack's own server, on a SQLite store of this test (never the demo's database).
    store = {"MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    mlflow_svc = dataclasses.replace(stack["mlflow"], env={**stack["mlflow"].env, **store})
    # The API runs as the reader; Airflow (training, monitoring) as the pipeline.
    assert stack["api"].env["MLFLOW_TRACKING_USERNAME"] == identities["reader_username"]
    airflow = stack["airflow-scheduler"].env
    assert airflow["MLFLOW_TRACKING_USERNAME"] == identities["pipeline_username"]
    assert airflow["MARKETFLOW_MLFLOW_READER_USERNAME"] == identities["reader_username"]

    try:
        # The server, then the stack's one-shot that creates the read-only user.
        start_all(settings, echo=lambda _: None, stack=[mlflow_svc, stack["mlflow-reader"]])
        assert _status(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1") == 401

        for key, value in pipeline_mlflow_env(settings).items():
            monkeypatch.setenv(key, value)
        settings = get_settings()
        pipeline = MlflowClient(uri, uri)
        experiment = pipeline.create_experiment("auth_drill")
        run = pipeline.create_run(experiment)
        model_file = tmp_path / "model.txt"
        model_file.write_text("weights")
        pipeline.log_artifact(run.info.run_id, str(model_file), "model")
        pipeline.set_terminated(run.info.run_id)
        pipeline.create_registered_model("signal")
        version = pipeline.create_model_version("signal", f"runs:/{run.info.run_id}/model",
                                                run.info.run_id)  # fmt: skip
        # No champion yet, as scoring meets it while the first training runs: the reader is
        # told "no champion" (MLflow's alias endpoint answers it 403 here), not an error.
        with reader_identity(settings):
            assert champion_version(MlflowClient(uri, uri), "signal") is None
            assert champion_version(MlflowClient(uri, uri), "no_such_model") is None
        pipeline.set_registered_model_alias("signal", "champion", version.version)

        with reader_identity(settings):
            reader = MlflowClient(uri, uri)
            assert reader.get_model_version_by_alias("signal", "champion").version == "1"
            assert champion_version(reader, "signal").version == "1"
            local = reader.download_artifacts(run.info.run_id, "model", str(tmp_path / "dl"))
            assert (Path(local) / "model.txt").read_text() == "weights"
            for write in (
                lambda: reader.set_registered_model_alias("signal", "champion", "2"),
                lambda: reader.create_model_version("signal", "/tmp/elsewhere", run.info.run_id),
                lambda: reader.delete_registered_model_alias("signal", "champion"),
            ):
                with pytest.raises(MlflowException, match="PERMISSION_DENIED|Permission denied"):
                    write()
        assert pipeline.get_model_version_by_alias("signal", "champion").version == "1"
        assert champion_version(pipeline, "signal").version == "1"
        assert champion_version(pipeline, "no_such_model") is None

        # A refused sign-in is an error, never "no champion" (the gate would then promote
        # unopposed, and scoring would say "train first").
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        with pytest.raises(MlflowException):
            champion_version(MlflowClient(uri, uri), "signal")
        for key, value in pipeline_mlflow_env(settings).items():
            monkeypatch.setenv(key, value)

        # A second `up` keeps the users and resets the reader's password to the stack's.
        stop_all(settings, echo=lambda _: None, stack=[mlflow_svc])
        # The server, then the stack's one-shot that creates the read-only user.
        start_all(settings, echo=lambda _: None, stack=[mlflow_svc, stack["mlflow-reader"]])
        with reader_identity(settings):
            assert MlflowClient(uri, uri).get_registered_model("signal").name == "signal"
    finally:
        stop_all(settings, echo=lambda _: None, stack=[mlflow_svc], timeout=10)
