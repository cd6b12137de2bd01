"""The stack's Airflow through its public REST API, with Airflow's own Python client
(apache-airflow-client): what `marketflow demo` and `marketflow backfill --wait` need to trigger
a run and follow it, and the runs its Assets trigger after it, to the end. Nothing here reads
Airflow's metadata tables (they are Airflow's private schema).

The local stack signs in as its admin (the password `marketflow up` generated into the data
dir, see marketflow.services.airflow_password); `/auth/token` gives the JWT the client sends.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.settings import Settings, get_settings


class AirflowApiError(RuntimeError):
    """The api-server refused or could not be reached; the message says what to do."""


@dataclass(frozen=True)
class RunState:
    dag_id: str
    run_id: str
    run_type: str
    state: str


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 15.0):
        self.base_url = base_url.rstrip("/")
        self._credentials = (username, password)
        self.timeout = timeout
        self._client: Any = None

    @classmethod
    def for_stack(cls, settings: Settings | None = None) -> AirflowApi:
        """The api-server of the local stack (`marketflow up`), as its admin."""
        from marketflow.services import airflow_password

        settings = settings or get_settings()
        password = airflow_password(settings)
        if password is None:
            raise AirflowApiError("no Airflow admin password in the data dir: start the stack "
                                  "with `marketflow up` (or `make demo`)")  # fmt: skip
        return cls(f"http://127.0.0.1:{settings.services.airflow_port}", "admin", password)

    def _token(self) -> str:
        username, password = self._credentials
        request = urllib.request.Request(
            f"{self.base_url}/auth/token",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return str(json.loads(response.read())["access_token"])
        except urllib.error.HTTPError as exc:
            raise AirflowApiError(f"Airflow at {self.base_url} refused the sign-in as "
                                  f"{username!r} ({exc.code})") from exc  # fmt: skip
        except OSError as exc:
            raise AirflowApiError(f"Airflow's api-server is not answering at {self.base_url} "
                                  f"({exc}): is the stack up (`marketflow up`)?") from exc  # fmt: skip

    def _api(self) -> Any:
        from airflow_client.client import ApiClient, Configuration

        if self._client is None:
            config = Configuration(host=self.base_url, access_token=self._token())
            self._client = ApiClient(config)
        return self._client

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> datetime:
        """Trigger a manual run of `dag_id`; its `run_after` (the moment the runs it sets off
        come after)."""
        from airflow_client.client.api.dag_run_api import DagRunApi
        from airflow_client.client.exceptions import ApiException
        from airflow_client.client.models import TriggerDAGRunPostBody

        body = TriggerDAGRunPostBody(dag_run_id=run_id, conf=conf, logical_date=None)
        try:
            run = DagRunApi(self._api()).trigger_dag_run(dag_id, body,
                                                         _request_timeout=self.timeout)  # fmt: skip
        except ApiException as exc:
            raise AirflowApiError(f"Airflow did not trigger {dag_id} ({exc.status}): "
                                  f"{_detail(exc)}") from exc  # fmt: skip
        return run.run_after  # type: ignore[no-any-return]

    def runs_since(self, dag_ids: list[str], since: datetime) -> list[RunState]:
        """Runs of `dag_ids` whose `run_after` is at or after `since`, oldest first."""
        from airflow_client.client.api.dag_run_api import DagRunApi

        api = DagRunApi(self._api())
        found: list[tuple[datetime, RunState]] = []
        for dag_id in dag_ids:
            page = api.get_dag_runs(dag_id, run_after_gte=since, order_by=["run_after"],
                                    limit=100, _request_timeout=self.timeout)  # fmt: skip
            for run in page.dag_runs:
                state = RunState(run.dag_id, run.dag_run_id, str(run.run_type.value),
                                 str(run.state.value))  # fmt: skip
                found.append((run.run_after, state))
        return [state for _, state in sorted(found, key=lambda pair: pair[0])]

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        """A task instance's state (None while it has none)."""
        from airflow_client.client.api.task_instance_api import TaskInstanceApi

        task = TaskInstanceApi(self._api()).get_task_instance(
            dag_id, run_id, task_id, _request_timeout=self.timeout
        )
        return None if task.state is None else str(task.state.value)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        from airflow_client.client.api.dag_api import DAGApi
        from airflow_client.client.models import DAGPatchBody

        DAGApi(self._api()).patch_dag(dag_id, DAGPatchBody(is_paused=paused),
                                      _request_timeout=self.timeout)  # fmt: skip


def _detail(exc: Any) -> str:
    """The `detail` of an api-server error answer, else its body."""
    try:
        return str(json.loads(exc.body)["detail"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body or exc.reason)
