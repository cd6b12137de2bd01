"""The stack's one definition (stack.yaml), filled in for a target.

`marketflow up` turns the local rendering into processes (marketflow/services.py);
`marketflow stack compose` writes docker-compose.yml from the compose rendering plus what only
containers need (docker/compose.base.yaml: images, volumes, PostgreSQL, Redis, the one-shot
`init`). A test keeps the committed docker-compose.yml equal to what this module writes, so
the two stacks cannot drift apart.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from core.settings import REPO_ROOT

STACK_FILE = REPO_ROOT / "stack.yaml"
COMPOSE_BASE = REPO_ROOT / "docker" / "compose.base.yaml"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"

Target = Literal["local", "compose"]
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_KEYS = {"command", "env", "airflow", "port", "publish", "health", "gate", "after", "oneshot",
         "executor", "queue", "optional", "profile", "targets"}  # fmt: skip


class StackError(ValueError):
    """stack.yaml (or a target's values for it) is wrong; the message names the process."""


@dataclass(frozen=True)
class Process:
    """One process of the stack with every placeholder filled for one target."""

    name: str
    command: list[str]
    env: dict[str, str]
    airflow: bool = False
    port: str | None = None
    publish: bool = False
    health: str | None = None
    gate: bool = False
    after: list[str] = field(default_factory=list)
    oneshot: bool = False
    executor: str | None = None
    queue: str | None = None
    optional: str | None = None
    profile: str | None = None


def load(path: Path = STACK_FILE) -> dict[str, Any]:
    spec = yaml.safe_load(path.read_text())
    names = list(spec["processes"])
    for name, proc in spec["processes"].items():
        unknown = set(proc) - _KEYS
        if unknown:
            raise StackError(f"{path.name}: {name} has unknown keys {sorted(unknown)}")
        if not proc.get("command"):
            raise StackError(f"{path.name}: {name} has no command")
        for dep in proc.get("after", []):
            if dep not in names[: names.index(name)]:
                raise StackError(f"{path.name}: {name} comes after {dep!r}, not an earlier process")
    return spec


def fill(value: Any, values: dict[str, str], where: str = "") -> Any:
    """Replace every `{name}` in the strings of `value` (a YAML tree) with values[name]."""
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in values:
                raise StackError(f"stack.yaml: {where or 'a value'} uses {{{key}}}, not set here")
            return str(values[key])

        return _PLACEHOLDER.sub(one, value)
    if isinstance(value, list):
        return [fill(item, values, where) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, values, where) for key, item in value.items()}
    return value


def airflow_environment(
    values: dict[str, str], celery: bool, spec: dict[str, Any] | None = None
) -> dict[str, str]:
    """What every Airflow component shares, with Celery's broker and backend when `celery`."""
    spec = spec or load()
    env = fill(spec["airflow_env"], values, "airflow_env")
    if celery:
        env.update(fill(spec["celery_env"], values, "celery_env"))
    return {key: str(value) for key, value in env.items()}


def processes(
    target: Target,
    values: dict[str, str],
    executor: str,
    spec: dict[str, Any] | None = None,
    everything: bool = False,
) -> list[Process]:
    """The processes `target` runs with this executor ("local" or "celery"), in start order.
    `everything` keeps those the executor or an unset optional setting would leave out (to
    stop whatever an earlier start left running)."""
    spec = spec or load()
    celery = executor == "celery"
    shared = airflow_environment(values, celery, spec)
    out = []
    for name, raw in spec["processes"].items():
        if target not in raw.get("targets", ["local", "compose"]):
            continue
        if not everything:
            if raw.get("executor") and raw["executor"] != executor:
                continue
            optional = raw.get("optional")
            if target == "local" and optional and values.get(optional) in (None, "", "0", 0):
                continue
        proc = fill(raw, values, name)
        own = {key: str(value) for key, value in (proc.get("env") or {}).items()}
        out.append(
            Process(
                name=name,
                command=[str(word) for word in proc["command"]],
                env={**shared, **own} if proc.get("airflow") else own,
                airflow=bool(proc.get("airflow")),
                port=None if proc.get("port") is None else str(proc["port"]),
                publish=bool(proc.get("publish")),
                health=proc.get("health"),
                gate=bool(proc.get("gate")),
                after=list(proc.get("after", [])),
                oneshot=bool(proc.get("oneshot")),
                executor=proc.get("executor"),
                queue=proc.get("queue"),
                optional=proc.get("optional"),
                profile=proc.get("profile"),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------------


def _required(name: str) -> str:
    return f"${{{name}:?set {name} in .env}}"


# What the compose rendering fills the placeholders with: service names for hosts, container
# paths, and the .env variables (`${VAR:?}` where .env must set it, `${VAR:-default}` where the
# code's default applies).
COMPOSE_VALUES: dict[str, str] = {
    "airflow_home": "/opt/airflow",
    "repo": "/opt/marketflow",
    "data_dir": "/var/lib/marketflow",
    "dbt_docs_projects": json.dumps(
        {
            "marketflow": {
                "dir": "/var/lib/marketflow/dbt-docs",
                "name": "dbt docs (feature catalogue)",
            }
        }
    ),
    "executor": "CeleryExecutor",
    "parallelism": "16",
    "airflow_passwords_file": "/opt/airflow/auth/simple_auth_manager_passwords.json.generated",
    "airflow_host": "airflow-api-server",
    "airflow_port": "8080",
    "bind_host": "0.0.0.0",
    "airflow_jwt_secret": _required("AIRFLOW_JWT_SECRET"),
    "airflow_database_url": (
        "postgresql+psycopg2://marketflow:${MARKETFLOW_DB_PASSWORD}@postgres:5432/airflow"
    ),
    "database_url": "postgresql://marketflow:${MARKETFLOW_DB_PASSWORD}@postgres:5432/marketflow",
    "mlflow_url": "http://mlflow:5000",
    "mlflow_port": "5000",
    # SQLAlchemy 2.1 (pinned) maps a bare postgresql:// to psycopg 3, which is not installed.
    "mlflow_database_url": (
        "postgresql+psycopg2://marketflow:${MARKETFLOW_DB_PASSWORD}@postgres:5432/mlflow"
    ),
    "artifact_root": "/var/lib/mlflow/artifacts",
    "mlflow_auth_config": "/opt/marketflow/docker/mlflow/basic_auth.ini",
    "mlflow_secret_key": _required("MLFLOW_FLASK_SERVER_SECRET_KEY"),
    "mlflow_pipeline_user": "marketflow",
    "mlflow_pipeline_password": _required("MLFLOW_PIPELINE_PASSWORD"),
    "mlflow_reader_user": "marketflow_reader",
    "mlflow_reader_password": _required("MLFLOW_READER_PASSWORD"),
    "celery_broker_url": "redis://redis:6379/0",
    "worker_concurrency": "${MARKETFLOW_WORKER_CONCURRENCY:-2}",
    "gpu_worker_concurrency": "${MARKETFLOW_GPU_WORKER_CONCURRENCY:-1}",
    "flower_port": "5555",
    "api_bind": "0.0.0.0:8000",
    "api_port": "8000",
    "api_database_url": (
        "postgresql://marketflow_api:${MARKETFLOW_API_DB_PASSWORD}@postgres:5432/marketflow"
    ),
    "api_public_page": "${MARKETFLOW_API_PUBLIC_PAGE:-true}",
    "api_link_secret": _required("MARKETFLOW_API_LINK_SECRET"),
}


def _merge(base: Any, over: Any) -> Any:
    """`over` on top of `base`: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return copy.deepcopy(over)


def _http_check(port: str, path: str) -> list[str]:
    url = f"http://localhost:{port}{path}"
    code = f"import urllib.request; urllib.request.urlopen('{url}', timeout=5)"
    return ["CMD", "python", "-c", code]


def compose(spec: dict[str, Any] | None = None, base_path: Path = COMPOSE_BASE) -> dict[str, Any]:
    """docker-compose.yml as a mapping: the base file's infrastructure, then every process of
    stack.yaml as a service (the base file's entry of the same name layered on top)."""
    spec = spec or load()
    base = yaml.safe_load(base_path.read_text())
    image = base.pop("x-image")
    extra_env = base.pop("x-airflow-env")
    airflow_deps = base.pop("x-airflow-depends-on")
    overlays = base.pop("x-process")
    services: dict[str, Any] = dict(base["services"])

    # `init` runs Airflow's CLI: it shares the components' configuration.
    shared = {**airflow_environment(COMPOSE_VALUES, True, spec), **extra_env}
    init = services["init"]
    services["init"] = {**init, "environment": {**shared, **init.get("environment", {})}}

    procs = processes("compose", COMPOSE_VALUES, "celery", spec, everything=True)
    by_name = {proc.name: proc for proc in procs}
    for proc in procs:
        svc: dict[str, Any] = {**copy.deepcopy(image)}
        if proc.airflow:
            svc["init"] = True
        svc["restart"] = "no" if proc.oneshot else "unless-stopped"
        if proc.profile:
            svc["profiles"] = [proc.profile]
        svc["command"] = proc.command
        svc["environment"] = {**proc.env, **(extra_env if proc.airflow else {})}
        if proc.publish and proc.port:
            svc["ports"] = [f"{proc.port}:{proc.port}"]
        depends = copy.deepcopy(airflow_deps) if proc.airflow else {}
        for dep in proc.after:
            other = by_name[dep]
            done = "service_completed_successfully" if other.oneshot else "service_healthy"
            depends[dep] = {"condition": done}
        if depends:
            svc["depends_on"] = depends
        if proc.health and proc.port:
            svc["healthcheck"] = {
                "test": _http_check(proc.port, proc.health),
                "interval": "15s",
                "timeout": "10s",
                "retries": 10,
                "start_period": "60s",
            }
        services[proc.name] = _merge(svc, overlays.get(proc.name, {}))
    unknown = set(overlays) - set(by_name)
    if unknown:
        raise StackError(f"{base_path.name}: x-process names no process: {sorted(unknown)}")
    return {**base, "services": services}


HEADER = """\
# GENERATED from stack.yaml and docker/compose.base.yaml by `marketflow stack compose`; edit
# those and run it again (a test fails while this file differs from what it writes).
#
# MarketFlow on one Docker host: PostgreSQL, Redis, Airflow 3 (api-server, scheduler,
# dag-processor, triggerer, Celery workers: one on the `default` queue and, with the `gpu`
# profile, one on the `gpu` queue; Flower with the `flower` profile), the MLflow server and the
# Flask API under gunicorn: the processes `marketflow up` starts locally, with the
# CeleryExecutor.
#
#   cp .env.example .env        # then fill in the passwords and secrets it leaves empty
#   docker compose up -d --build                           # UI: Airflow :8080, MLflow :5000, API :8000
#   docker compose --profile gpu up -d --build             # plus the GPU worker (NVIDIA host)
#
# Airflow's admin password: docker compose exec airflow-api-server \\
#   cat /opt/airflow/auth/simple_auth_manager_passwords.json.generated
"""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # every value written out in full
        return True


def compose_text(spec: dict[str, Any] | None = None) -> str:
    body = yaml.dump(compose(spec), Dumper=_Dumper, sort_keys=False, width=100,
                     default_flow_style=False)  # fmt: skip
    return HEADER + body
