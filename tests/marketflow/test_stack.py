"""stack.yaml, the stack's one definition: what each target makes of it, and the mistakes it
refuses (marketflow/stack.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.settings import Settings
from marketflow import stack
from marketflow.services import services


def _spec(tmp_path: Path, processes: dict) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(
        yaml.safe_dump(
            {"airflow_env": {}, "celery_env": {}, "processes": processes}, sort_keys=False
        )
    )
    return path


def test_an_unknown_key_names_the_process(tmp_path):
    path = _spec(tmp_path, {"web": {"command": ["x"], "helth": "/health"}})
    with pytest.raises(stack.StackError, match=r"web has unknown keys \['helth'\]"):
        stack.load(path)


def test_after_must_name_an_earlier_process(tmp_path):
    path = _spec(tmp_path, {"web": {"command": ["x"], "after": ["db"]}, "db": {"command": ["y"]}})
    with pytest.raises(stack.StackError, match="web comes after 'db'"):
        stack.load(path)


def test_a_placeholder_without_a_value_is_an_error(tmp_path):
    spec = stack.load(_spec(tmp_path, {"web": {"command": ["serve", "--port", "{web_port}"]}}))
    with pytest.raises(stack.StackError, match=r"web uses \{web_port\}"):
        stack.processes("local", {}, "local", spec)
    (web,) = stack.processes("local", {"web_port": "8123"}, "local", spec)
    assert web.command == ["serve", "--port", "8123"]


def _local(tmp_path: Path, **services_settings) -> list[str]:
    settings = Settings(data_dir=tmp_path, services=services_settings)
    return [svc.name for svc in services(settings)]


def test_the_local_executor_starts_no_worker(tmp_path):
    names = _local(tmp_path)
    assert not [name for name in names if "worker" in name or "flower" in name]
    assert names[:3] == ["mlflow", "mlflow-reader", "airflow-api-server"]
    assert "airflow-triggerer" not in names  # compose only (no deferrable task here)


def test_celery_adds_one_worker_per_queue_and_flower_only_with_a_port(tmp_path):
    celery = {svc.name: svc for svc in services(Settings(data_dir=tmp_path,
              services={"executor": "celery", "gpu_worker_concurrency": 3}))}  # fmt: skip
    gpu = celery["airflow-worker-gpu"]
    assert gpu.argv[gpu.argv.index("--queues") + 1] == "gpu"
    assert gpu.argv[gpu.argv.index("--concurrency") + 1] == "3"
    assert gpu.env["MARKETFLOW_WORKER_NAME"] == "gpu"
    assert gpu.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert gpu.env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/0"
    default = celery["airflow-worker"]
    assert default.argv[default.argv.index("--queues") + 1] == "default"
    assert "airflow-flower" not in celery
    with_flower = _local(tmp_path, executor="celery", flower_port=5599)
    assert "airflow-flower" in with_flower


def test_the_local_stack_fills_ports_and_secrets_from_the_settings(tmp_path):
    settings = Settings(data_dir=tmp_path, services={"airflow_port": 18080})
    by_name = {svc.name: svc for svc in services(settings)}
    api_server = by_name["airflow-api-server"]
    assert api_server.health_url == "http://127.0.0.1:18080/api/v2/monitor/health"
    env = api_server.env
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "AIRFLOW__CELERY__BROKER_URL" not in env
    secret = (tmp_path / "airflow" / "jwt_secret").read_text().strip()
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secret and len(secret) > 30
    assert by_name["mlflow-reader"].oneshot
    assert by_name["mlflow"].env["MLFLOW_ARTIFACTS_DESTINATION"] == str(settings.artifact_root)


def test_compose_layers_the_base_file_on_the_processes():
    generated = stack.compose()["services"]
    worker = generated["airflow-worker-gpu"]
    assert worker["profiles"] == ["gpu"] and worker["image"].startswith("${MARKETFLOW_GPU_IMAGE")
    assert worker["depends_on"]["airflow-api-server"] == {"condition": "service_healthy"}
    assert generated["api"]["depends_on"]["mlflow-reader"] == {
        "condition": "service_completed_successfully"
    }
    assert generated["mlflow"]["healthcheck"]["start_period"] == "30s"  # the base file's
    assert generated["mlflow"]["ports"] == ["5000:5000"]
