"""Airflow's CeleryExecutor as `marketflow up --executor celery` runs it: the scheduler, the
api-server, the DAG processor, a `default` and a `gpu` Celery worker, a Redis broker of the
test's own (started on a free port: the machine's Redis is never stopped) and a metadata
database of its own.

The drill DAGs live in a second DAG bundle of the test's own (Airflow's
`dag_bundle_config_list`), beside the project's DAGs folder, so the executor is exercised with
tasks whose timing the test controls: where a task runs, a worker killed mid-task, the broker
restarted while tasks wait in it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.settings import get_settings
from core.urls import database_name
from marketflow.airflow_api import AirflowApi
from marketflow.services import (
    Service,
    run_dir,
    services,
    start_all,
    stop_all,
    worker_identity,
)
from tests.api.api_test_helpers import free_port
from tests.helpers import airflow_cli, own_airflow, wait_for

pytestmark = pytest.mark.e2e

DRILLS = """
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import dag, task

ARGS = {"retries": 2, "retry_delay": timedelta(seconds=1)}


@dag(dag_id="drill_queues", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
     default_args=ARGS)
def drill_queues():
    @task
    def on_default():
        return os.getpid()

    @task(queue="gpu")
    def on_gpu():
        return os.getpid()

    on_default() >> on_gpu()


@dag(dag_id="drill_slow", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
     default_args=ARGS)
def drill_slow():
    @task
    def slow(ti=None):
        marker = Path(os.environ["DRILL_DIR"]) / f"slow_try_{ti.try_number}"
        marker.write_text(str(os.getpid()))
        time.sleep(40)

    slow()


@dag(dag_id="drill_fanout", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
     default_args=ARGS)
def drill_fanout():
    @task
    def one(i):
        return i

    one.expand(i=list(range(6)))


drill_queues()
drill_slow()
drill_fanout()
"""


class Redis:
    """A redis-server of the test's own on a free port, its append-only file in `folder` (so
    a restart keeps what the broker held)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                  capture_output=True, text=True)  # fmt: skip
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.2)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def queue_length(self, queue: str) -> int:
        """Messages waiting in a Celery queue (a Redis list named after it)."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), "llen", queue],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return int(out.stdout.strip())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None


def _finished(api: AirflowApi, dag_id: str, run_id: str, timeout: float = 240) -> str:
    def state() -> str | None:
        [run] = [r for r in api.runs_since([dag_id], EPOCH) if r.run_id == run_id]
        return run.state if run.state in ("success", "failed") else None

    return str(wait_for(state, f"{dag_id} {run_id} to finish", timeout))


EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def celery_stack(
    make_database, admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict]:
    url = make_database()
    redis = Redis(tmp_path / "redis")
    redis.start()
    drills = tmp_path / "drills"
    drills.mkdir()
    (drills / "drills.py").write_text(DRILLS)
    monkeypatch.setenv("DRILL_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETFLOW_DATABASE_URL", url)
    monkeypatch.setenv("MARKETFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MARKETFLOW_AIRFLOW_PORT", str(free_port()))
    monkeypatch.setenv("MARKETFLOW_AIRFLOW_DATABASE", database_name(url) + "_celery_airflow")
    monkeypatch.setenv("MARKETFLOW_EXECUTOR", "celery")
    monkeypatch.setenv("MARKETFLOW_CELERY_BROKER_URL", redis.url)
    bundle = "airflow.dag_processing.bundles.local.LocalDagBundle"
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([
        {"name": "dags-folder", "classpath": bundle, "kwargs": {}},
        {"name": "drills", "classpath": bundle, "kwargs": {"path": str(drills)}},
    ]))  # fmt: skip
    # A dead worker's task is noticed after 20 s instead of 5 minutes (the mechanism is the
    # same: the task's heartbeat stops).
    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "20")
    settings = get_settings()
    airflow_only = [s for s in services(settings) if s.name.startswith("airflow-")]
    names = {s.name for s in airflow_only}
    assert {"airflow-worker", "airflow-worker-gpu"} <= names  # the celery stack's workers
    try:
        with own_airflow(settings, admin_url, lambda name: name in names) as (env, _, stack):
            airflow_cli(env, "dags", "reserialize")
            start_all(settings, echo=lambda _: None, stack=stack)
            api = AirflowApi.for_stack(settings)
            wait_for(lambda: _has_dags(api), "the drill DAGs to be parsed", 120)
            yield {"api": api, "env": env, "stack": stack, "settings": settings,
                   "redis": redis, "tmp": tmp_path}  # fmt: skip
    finally:
        redis.stop()


def _has_dags(api: AirflowApi) -> bool:
    try:
        api.runs_since(["drill_queues", "drill_slow", "drill_fanout"], EPOCH)
    except Exception:  # noqa: BLE001 - 404 until the DAG processor has parsed the bundle
        return False
    return True


def _task(api: AirflowApi, dag_id: str, run_id: str, task_id: str, map_index: int = -1):
    from airflow_client.client.api.task_instance_api import TaskInstanceApi

    client = TaskInstanceApi(api._api())
    if map_index < 0:
        return client.get_task_instance(dag_id, run_id, task_id)
    return client.get_mapped_task_instance(dag_id, run_id, task_id, map_index)


def test_tasks_run_on_the_worker_of_their_queue(celery_stack: dict) -> None:
    api: AirflowApi = celery_stack["api"]
    api.trigger("drill_queues", "queues", {})
    assert _finished(api, "drill_queues", "queues") == "success"
    default = _task(api, "drill_queues", "queues", "on_default")
    gpu = _task(api, "drill_queues", "queues", "on_gpu")
    assert (default.queue, gpu.queue) == ("default", "gpu")
    # Each worker records its tasks under `<queue>@<host>` (marketflow.services.worker_identity).
    assert str(default.hostname).startswith("default@"), default.hostname
    assert str(gpu.hostname).startswith("gpu@"), gpu.hostname


def test_a_worker_killed_mid_task_is_retried_on_the_other_worker(celery_stack: dict) -> None:
    api: AirflowApi = celery_stack["api"]
    settings, tmp = celery_stack["settings"], celery_stack["tmp"]
    # A second worker on the default queue, as a second host would run one.
    [default] = [s for s in celery_stack["stack"] if s.name == "airflow-worker"]
    argv = [a.replace("default@%h", "spare@%h") for a in default.argv]
    spare = Service("airflow-worker-spare", argv, None, {**default.env, **worker_identity("spare")})
    start_all(settings, echo=lambda _: None, stack=[spare])
    celery_stack["stack"].append(spare)  # stopped with the rest

    api.trigger("drill_slow", "slow", {})
    wait_for(lambda: (tmp / "slow_try_1").exists(), "the slow task to start", 120)
    first = _task(api, "drill_slow", "slow", "slow")
    by_prefix = {"default": "airflow-worker", "spare": "airflow-worker-spare"}
    victim = by_prefix[str(first.hostname).split("@")[0]]
    pid = int((run_dir(settings) / f"{victim}.pid").read_text())
    os.killpg(pid, signal.SIGKILL)  # the whole worker: its Celery pool and the task with it

    assert _finished(api, "drill_slow", "slow", timeout=300) == "success"
    last = _task(api, "drill_slow", "slow", "slow")
    assert last.try_number >= 2 and (tmp / "slow_try_2").exists()
    assert last.hostname != first.hostname, (first.hostname, last.hostname)


def test_a_broker_restart_loses_no_queued_task(celery_stack: dict) -> None:
    api: AirflowApi = celery_stack["api"]
    settings, redis = celery_stack["settings"], celery_stack["redis"]
    workers = [s for s in celery_stack["stack"] if s.name.startswith("airflow-worker")]
    stop_all(settings, echo=lambda _: None, stack=workers, timeout=20)

    api.trigger("drill_fanout", "fanout", {})

    def queued() -> int:
        states = [_task(api, "drill_fanout", "fanout", "one", i).state for i in range(6)]
        return sum(s is not None and s.value == "queued" for s in states)

    # As many as the scheduler's parallelism lets it hand over (the rest wait, scheduled).
    wait_for(lambda: queued() >= 3, "tasks handed to the broker", 120)
    # The executor sends them a moment after they turn queued: in Redis, nobody consuming.
    wait_for(lambda: redis.queue_length("default") >= 3, "messages waiting in Redis", 60)
    redis.stop()  # the broker goes down with their messages in it...
    redis.start()  # ...and comes back on the same port, from its append-only file
    assert redis.queue_length("default") >= 3  # kept across the restart
    start_all(settings, echo=lambda _: None, stack=workers)

    assert _finished(api, "drill_fanout", "fanout", timeout=300) == "success"
    tries = [_task(api, "drill_fanout", "fanout", "one", i).try_number for i in range(6)]
    assert tries == [1] * 6  # each ran once, from the broker's kept message, not a retry
