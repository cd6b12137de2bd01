"""Start and stop the local stack (Airflow, MLflow, the API) as plain processes with pid files.

The processes are stack.yaml's (marketflow/stack.py), filled in from the settings.

`make demo` starts them, `make down` stops exactly what was started, by pid file. Each
process gets its own session so that stopping it takes its workers along.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.settings import REPO_ROOT, Settings, get_settings
from core.urls import read_only_url, sqlalchemy_url, with_database
from marketflow import stack as stack_yaml

BIN = Path(sys.executable).parent
# The Airflow UI's menu entry (Browse) for the dbt docs site, and its path on the api-server.
DBT_DOCS_NAME = "dbt docs (feature catalogue)"
DBT_DOCS_PATH = "/cosmos/marketflow/dbt_docs_index.html"


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    health_url: str | None
    env: dict[str, str]
    # Start nothing after this one until it is healthy (tasks need Airflow's execution API).
    gate: bool = False
    # Runs to completion (e.g. MLflow's read-only user) before the next starts.
    oneshot: bool = False


def run_dir(settings: Settings) -> Path:
    path = settings.data_dir / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


PIPELINE_USER, READER_USER = "marketflow", "marketflow_reader"


def mlflow_identities(settings: Settings) -> dict[str, str]:
    """The local stack's MLflow credentials, generated once into an owner-only file: the
    pipeline's identity (MLflow's admin: runs, models, aliases), a read-only one (the API,
    batch scoring) and the auth app's session secret."""
    path = mlflow_identities_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        identities = {
            "pipeline_username": PIPELINE_USER,
            "pipeline_password": secrets.token_urlsafe(18),
            "reader_username": READER_USER,
            "reader_password": secrets.token_urlsafe(18),
            "secret_key": secrets.token_urlsafe(32),
        }
        _write_private(path, json.dumps(identities, indent=1) + "\n")
    path.chmod(0o600)
    loaded: dict[str, str] = json.loads(path.read_text())
    return loaded


def mlflow_identities_file(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.data_dir / "mlflow" / "identities.json"


def pipeline_mlflow_env(settings: Settings) -> dict[str, str]:
    """What a process talking to the stack's MLflow as the pipeline needs (Airflow, the CLI),
    the read-only identity included for batch scoring (ml.registry.tracking.reader_identity)."""
    ids = mlflow_identities(settings)
    return {
        "MLFLOW_TRACKING_USERNAME": ids["pipeline_username"],
        "MLFLOW_TRACKING_PASSWORD": ids["pipeline_password"],
        "MARKETFLOW_MLFLOW_READER_USERNAME": ids["reader_username"],
        "MARKETFLOW_MLFLOW_READER_PASSWORD": ids["reader_password"],
    }


def _mlflow_auth_config(settings: Settings) -> Path:
    """MLflow's basic-auth app configuration: every signed-in user may read, only the admin
    (the pipeline) writes what it did not create; the user store is a SQLite file beside it.
    The admin's name and password come from the environment, never from this file."""
    folder = settings.data_dir / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "basic_auth.ini"
    _write_private(path, "\n".join([
        "[mlflow]",
        "default_permission = READ",
        f"database_uri = sqlite:///{folder / 'basic_auth.db'}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access = false",
        "",
    ]))  # fmt: skip
    return path


def ensure_mlflow_reader(
    tracking_uri: str, admin: tuple[str, str], reader: tuple[str, str]
) -> None:
    """Create MLflow's read-only user `reader` (name, password), or reset its password to the
    given one when it exists, signed in as the auth app's `admin`. Through MLflow's own user
    REST API (the auth app has no CLI for it)."""
    base = tracking_uri.rstrip("/") + "/api/2.0/mlflow/users"
    token = base64.b64encode(f"{admin[0]}:{admin[1]}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    body = json.dumps({"username": reader[0], "password": reader[1]}).encode()
    for method, path in (("POST", "create"), ("PATCH", "update-password")):
        request = urllib.request.Request(f"{base}/{path}", body, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30):
                return
        except urllib.error.HTTPError as err:
            if path == "create" and b"already exists" in err.read():
                continue  # kept from an earlier start: make its password the current one
            raise RuntimeError(f"could not set up MLflow's read-only user: {err}") from err


def api_link_secret(settings: Settings) -> str:
    """The local stack's key for the API's signed report links, generated once into an
    owner-only file (the same for every worker and across restarts)."""
    path = settings.data_dir / "api" / "link_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, secrets.token_urlsafe(32))
    path.chmod(0o600)
    return path.read_text().strip()


def local_values(settings: Settings) -> dict[str, str]:
    """What stack.yaml's placeholders are on the local stack: the settings, paths under the
    data folder, and the secrets generated there once (owner-only files)."""
    home = settings.data_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    secret_file = home / "jwt_secret"
    if not secret_file.exists():
        _write_private(secret_file, secrets.token_urlsafe(32))
    secret_file.chmod(0o600)
    # Airflow's simple auth manager generates the admin password into a world-readable file
    # and prints it to the api-server's log; written here first (owner-only), it does neither.
    passwords = airflow_password_file(settings)
    if not passwords.exists():
        _write_private(passwords, json.dumps({"admin": secrets.token_urlsafe(16)}) + "\n")
    passwords.chmod(0o600)
    ids = mlflow_identities(settings)
    # The API's own URL when one is set, else the pipeline's server as the read-only role.
    explicit = "database_url" in settings.api.model_fields_set
    dbt_docs = {"marketflow": {"dir": str(settings.data_dir / "dbt-docs"), "name": DBT_DOCS_NAME}}
    svc = settings.services
    return {
        "airflow_home": str(home),
        "repo": str(REPO_ROOT),
        "data_dir": str(settings.data_dir),
        "dbt_docs_projects": json.dumps(dbt_docs),
        "executor": "CeleryExecutor" if svc.executor == "celery" else "LocalExecutor",
        "parallelism": "4",
        "airflow_passwords_file": str(passwords),
        "airflow_host": "127.0.0.1",
        "airflow_port": str(svc.airflow_port),
        "bind_host": "127.0.0.1",
        "airflow_jwt_secret": secret_file.read_text().strip(),
        "airflow_database_url": sqlalchemy_url(
            with_database(settings.db.url, svc.airflow_database)
        ),
        "database_url": settings.db.url,
        "mlflow_url": settings.mlflow.tracking_uri,
        "mlflow_port": settings.mlflow.tracking_uri.rsplit(":", 1)[-1].strip("/") or "5000",
        "mlflow_database_url": sqlalchemy_url(with_database(settings.db.url, "mlflow")),
        "artifact_root": str(settings.artifact_root),
        "mlflow_auth_config": str(_mlflow_auth_config(settings)),
        "mlflow_secret_key": ids["secret_key"],
        "mlflow_pipeline_user": ids["pipeline_username"],
        "mlflow_pipeline_password": ids["pipeline_password"],
        "mlflow_reader_user": ids["reader_username"],
        "mlflow_reader_password": ids["reader_password"],
        "celery_broker_url": svc.celery_broker_url,
        "worker_concurrency": str(svc.worker_concurrency),
        "gpu_worker_concurrency": str(svc.gpu_worker_concurrency),
        "flower_port": str(svc.flower_port),
        "api_bind": settings.api.bind,
        "api_port": settings.api.bind.rsplit(":", 1)[-1],
        "api_database_url": settings.api.database_url
        if explicit
        else read_only_url(settings.db.url),
        # The demo's page is public (the default elsewhere is off).
        "api_public_page": "true",
        "api_link_secret": api_link_secret(settings),
    }


def airflow_env(settings: Settings | None = None) -> dict[str, str]:
    """The environment every Airflow component (and `airflow` CLI call) of the demo shares
    (stack.yaml's `airflow_env`, with its `celery_env` under MARKETFLOW_EXECUTOR=celery)."""
    settings = settings or get_settings()
    return stack_yaml.airflow_environment(
        local_values(settings), settings.services.executor == "celery"
    )


def services(settings: Settings | None = None, everything: bool = False) -> list[Service]:
    """The local stack: stack.yaml's processes for this executor, in start order. `everything`
    adds those this configuration leaves out (the Celery workers under the LocalExecutor,
    Flower without a port), to stop what an earlier start with other settings left running."""
    settings = settings or get_settings()
    procs = stack_yaml.processes(
        "local", local_values(settings), settings.services.executor, everything=everything
    )
    out = []
    for proc in procs:
        exe = BIN / proc.command[0]
        argv = [str(exe) if exe.exists() else proc.command[0], *proc.command[1:]]
        health = f"http://127.0.0.1:{proc.port}{proc.health}" if proc.health else None
        out.append(Service(proc.name, argv, health, proc.env, gate=proc.gate, oneshot=proc.oneshot))
    return out


DEFAULT_QUEUE, GPU_QUEUE = "default", "gpu"


def worker_identity(name: str) -> dict[str, str]:
    """The environment that makes Airflow record a task run by this worker under the host name
    `<name>@<host>` (the task instance's `hostname`, in the UI and the REST API), so two workers
    on one machine are told apart (as stack.yaml gives its workers)."""
    return {
        "MARKETFLOW_WORKER_NAME": name,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "marketflow.services.worker_hostname",
    }


def worker_hostname() -> str:
    """Airflow's `hostname_callable` on the local Celery workers (see worker_identity)."""
    import socket

    name = get_settings().services.worker_name
    host = socket.getfqdn()
    return f"{name}@{host}" if name else host


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recorded(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _pid(path: Path) -> int | None:
    pid = _recorded(path)
    return pid if pid is not None and _alive(pid) else None


def _group_alive(pgid: int) -> bool:
    """Whether any live process (not a zombie waiting for its parent) is in group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _stop_group(pgid: int, timeout: float) -> None:
    """SIGTERM every process of the service's group, SIGKILL what is left after `timeout`.

    Each service is started as its own session (process group id = its pid), so this also
    reaches the children of a leader that has already died: a scheduler killed with SIGKILL
    leaves its log and health servers running on their ports, in the same group."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.2)
    if _group_alive(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.1)


def wait_http(url: str, timeout: float = 120.0, pid: int | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not _alive(pid):
            return False
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status < 500:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        except urllib.error.HTTPError as exc:  # pragma: no cover - HTTPError is a URLError
            if exc.code < 500:
                return True
        time.sleep(1)
    return False


def start_all(
    settings: Settings | None = None, echo=print, stack: list[Service] | None = None
) -> None:
    settings = settings or get_settings()
    stack = services(settings) if stack is None else stack
    rd = run_dir(settings)
    logs = rd / "logs"
    logs.mkdir(exist_ok=True)
    logs.chmod(0o700)  # task output and service logs may quote configuration
    for svc in stack:
        if svc.oneshot:
            _run_once(svc, logs)
            continue
        pidfile = rd / f"{svc.name}.pid"
        if _pid(pidfile):
            echo(f"  {svc.name:<22} already running (pid {_pid(pidfile)})")
            continue
        orphaned = _recorded(pidfile)
        if orphaned is not None and _group_alive(orphaned):
            # The leader died (SIGKILL, OOM) but its children still hold ports and memory.
            echo(f"  {svc.name:<22} stopping what its dead process (pid {orphaned}) left")
            _stop_group(orphaned, timeout=10)
        # Handed to the child, closed below; owner-only like the folder.
        log = os.fdopen(os.open(logs / f"{svc.name}.log",
                                os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")  # fmt: skip
        proc = subprocess.Popen(
            svc.argv,
            cwd=REPO_ROOT,
            env={**os.environ, **svc.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        pidfile.write_text(str(proc.pid))
        echo(f"  {svc.name:<22} started (pid {proc.pid}, log {logs / (svc.name + '.log')})")
        if svc.gate:
            _check_healthy(svc, rd)
    for svc in stack:
        if not svc.oneshot:
            _check_healthy(svc, rd)


def _run_once(svc: Service, logs: Path) -> None:
    """A one-shot process of the stack: run it to completion, its output in its log."""
    log_file = logs / f"{svc.name}.log"
    with os.fdopen(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        done = subprocess.run(svc.argv, cwd=REPO_ROOT, env={**os.environ, **svc.env}, stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=300)  # fmt: skip
    if done.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(
            f"{svc.name} failed (exit {done.returncode}); last lines of {log_file}:\n{tail}"
        )


def _check_healthy(svc: Service, rd: Path) -> None:
    pid = _pid(rd / f"{svc.name}.pid")
    if pid is None or (svc.health_url and not wait_http(svc.health_url, 180, pid)):
        log_file = rd / "logs" / f"{svc.name}.log"
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(
            f"{svc.name} did not start (health {svc.health_url}); last lines of {log_file}:\n{tail}"
        )


def stop_all(
    settings: Settings | None = None,
    echo=print,
    timeout: float = 30.0,
    stack: list[Service] | None = None,
) -> None:
    """Stop every service's whole process group, the leader's children included, even when
    the leader itself is already gone."""
    settings = settings or get_settings()
    if stack is None:
        # Whatever executor the stack was started with: its workers are stopped too.
        stack = services(settings, everything=True)
    rd = run_dir(settings)
    for svc in reversed([svc for svc in stack if not svc.oneshot]):
        pidfile = rd / f"{svc.name}.pid"
        pid = _recorded(pidfile)
        if pid is None or not _group_alive(pid):
            pidfile.unlink(missing_ok=True)
            continue
        leader = "" if _alive(pid) else ", its leader already dead"
        _stop_group(pid, timeout)
        pidfile.unlink(missing_ok=True)
        echo(f"  stopped {svc.name} (process group {pid}{leader})")


def status(settings: Settings | None = None) -> dict[str, int | None]:
    settings = settings or get_settings()
    rd = run_dir(settings)
    return {svc.name: _pid(rd / f"{svc.name}.pid") for svc in services(settings) if not svc.oneshot}


def _write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def airflow_password_file(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.data_dir / "airflow" / "simple_auth_manager_passwords.json.generated"


def airflow_password(settings: Settings | None = None) -> str | None:
    path = airflow_password_file(settings)
    try:
        return json.loads(path.read_text()).get("admin")
    except (FileNotFoundError, json.JSONDecodeError):
        return None
