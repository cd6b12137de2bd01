"""docker-compose.yml, docker/ and .env.example agree with each other, with the code and with
the local stack: both are read from stack.yaml (docker-compose.yml is generated from it).

Static checks: no Docker engine, no network, no database. `docker compose config` runs only
where the compose CLI is installed.
"""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKER_DIR = REPO / "docker"
DOCKERFILES = {"cpu": DOCKER_DIR / "Dockerfile", "gpu": DOCKER_DIR / "Dockerfile.gpu"}
INIT_SQL = DOCKER_DIR / "postgres" / "init.sql"
# Where the code that reads the environment lives. The tests read MARKETFLOW_TEST_PG and
# MARKETFLOW_ADMIN_URL; their other reads are of variables tests/conftest.py itself sets.
CODE_DIRS = ("marketflow", "ingest", "ml", "api", "expectations", "dags", "bench")
TEST_DIRS = ("tests",)
DBT_PROFILES = REPO / "dbt" / "profiles.yml"

AIRFLOW_COMPONENTS = (
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
)
# Services that run Airflow code and so need Airflow's shared configuration.
AIRFLOW_CONFIGURED = (*AIRFLOW_COMPONENTS, "init")
# Settings every Airflow process must agree on.
SHARED_AIRFLOW_SETTINGS = (
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "MARKETFLOW_DATABASE_URL",
    "MLFLOW_TRACKING_URI",
)
# Stand-ins for the values .env must supply (the `${VAR:?}` ones); not secrets.
TEST_ENV = {
    "POSTGRES_PASSWORD": "test-postgres-pw",
    "MARKETFLOW_DB_PASSWORD": "test-marketflow-pw",
    "MARKETFLOW_API_DB_PASSWORD": "test-api-pw",
    "MARKETFLOW_ANALYST_DB_PASSWORD": "test-analyst-pw",
    "AIRFLOW_JWT_SECRET": "test-jwt-secret",
    "AIRFLOW_API_SECRET_KEY": "test-api-secret-key",
    "MLFLOW_PIPELINE_PASSWORD": "test-mlflow-pipeline-pw",
    "MLFLOW_READER_PASSWORD": "test-mlflow-reader-pw",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-mlflow-secret-key",
    "MARKETFLOW_API_LINK_SECRET": "test-api-link-secret",
}

_VAR_REF = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg")
        current = env.get(name)
        if op in (":-", "-"):
            unset = current is None or (op == ":-" and current == "")
            return arg if unset else current
        if op in (":?", "?"):
            missing = current is None or (op == ":?" and current == "")
            if missing:
                raise KeyError(f"docker-compose.yml requires {name}: {arg}")
        return current or ""

    return _VAR_REF.sub(sub, value)


def _walk(node: Any, env: dict[str, str]) -> Any:  # a YAML tree
    if isinstance(node, dict):
        return {k: _walk(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, env) for v in node]
    if isinstance(node, str):
        return _interpolate(node, env)
    return node


def _parse_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{path.name}: not NAME=value: {line!r}"
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"{path.name}: bad name {name!r}"
        assert name not in values, f"{path.name}: {name} twice"
        values[name] = value
    return values


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def _depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _published_ports(service: dict) -> dict[int, int]:
    """{published host port: container port} from short or long port syntax."""
    ports: dict[int, int] = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports[int(entry["published"])] = int(entry["target"])
            continue
        parts = str(entry).split("/")[0].rsplit(":", 2)
        target = int(parts[-1])
        published = int(parts[-2]) if len(parts) >= 2 else target
        ports[published] = target
    return ports


def _flag(cmd: list[str], *names: str) -> str | None:
    for i, arg in enumerate(cmd):
        if arg in names and i + 1 < len(cmd):
            return cmd[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _code_files(dirs: tuple[str, ...] = CODE_DIRS + TEST_DIRS) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        files += sorted((REPO / d).rglob("*.py"))
    return [f for f in files if f.resolve() != Path(__file__).resolve()]


def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)(?:\s*;.*)?", line)
        assert m, f"{path.name}: not an exact pin: {line!r}"
        pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return _parse_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(compose_text: str, env_example: dict[str, str]) -> dict:
    """docker-compose.yml as `cp .env.example .env` plus the required secrets would render it."""
    raw = yaml.safe_load(compose_text)
    return _walk(raw, {**env_example, **TEST_ENV})


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


# --------------------------------------------------------------------------------------------
# docker-compose.yml on its own
# --------------------------------------------------------------------------------------------


def test_the_design_services_are_there(services):
    expected = {"postgres", "redis", "init", "mlflow", "api", *AIRFLOW_COMPONENTS}
    assert expected <= set(services), f"missing: {sorted(expected - set(services))}"


def test_required_variables_stop_compose_when_unset(compose_text, env_example):
    raw = yaml.safe_load(compose_text)
    for name in TEST_ENV:
        env = {**env_example, **TEST_ENV}
        env.pop(name)
        with pytest.raises(KeyError, match=name):
            _walk(raw, env)


def test_depends_on_names_existing_services_with_sound_conditions(services):
    for name, svc in services.items():
        for dep, condition in _depends_on(svc).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name
            target = services[dep]
            assert condition in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }, f"{name} -> {dep}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in target, f"{name} waits for {dep} healthy: no healthcheck"
            if condition == "service_completed_successfully":
                assert target.get("restart", "no") == "no", f"{dep} is one-shot: restart 'no'"
            # A service in no profile must not wait for one that only a profile starts.
            if not svc.get("profiles"):
                assert not target.get("profiles"), f"{name} depends on profile-only {dep}"


def test_every_airflow_component_waits_for_init_and_the_stores(services):
    for name in AIRFLOW_COMPONENTS:
        deps = _depends_on(services[name])
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name
        assert deps.get("init") == "service_completed_successfully", name
    assert _depends_on(services["init"]).get("postgres") == "service_healthy"
    assert _depends_on(services["api"]).get("init") == "service_completed_successfully"
    for name in ("airflow-worker", "airflow-worker-gpu", "airflow-triggerer"):
        # They talk to the Execution API from their first task on.
        assert _depends_on(services[name]).get("airflow-api-server") == "service_healthy", name


def test_ports_are_published_by_the_right_services(services):
    owners: dict[int, list[str]] = {}
    for name, svc in services.items():
        for published, target in _published_ports(svc).items():
            owners.setdefault(published, []).append(name)
            if published in (8080, 5000, 8000):
                assert target == published, f"{name}: {published} -> {target}"
    assert owners.get(8080) == ["airflow-api-server"]
    assert owners.get(5000) == ["mlflow"]
    assert owners.get(8000) == ["api"]
    for port, names in owners.items():
        assert len(names) == 1, f"host port {port} published by {names}"


def test_airflow_components_share_one_configuration(services, compose_text):
    reference = _environment(services["airflow-api-server"])
    for setting in SHARED_AIRFLOW_SETTINGS:
        assert setting in reference, setting
    for name in AIRFLOW_CONFIGURED:
        env = _environment(services[name])
        for setting in SHARED_AIRFLOW_SETTINGS:
            assert env.get(setting) == reference[setting], f"{name}: {setting} differs"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False", name
        assert env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "False", name  # no phoning home
    # The secrets come from .env, not from a literal in the file.
    raw_env = yaml.safe_load(compose_text)["services"]["airflow-scheduler"]["environment"]
    assert raw_env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?")
    assert raw_env["AIRFLOW__API__SECRET_KEY"].startswith("${AIRFLOW_API_SECRET_KEY:?")
    assert raw_env["AIRFLOW__CORE__FERNET_KEY"].startswith("${AIRFLOW_FERNET_KEY")
    assert reference["AIRFLOW__API_AUTH__JWT_SECRET"] == TEST_ENV["AIRFLOW_JWT_SECRET"]
    assert reference["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_airflow_urls_point_at_the_compose_services(services):
    env = _environment(services["airflow-api-server"])
    api_url = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (api_url.hostname, api_url.port, api_url.path) == (
        "airflow-api-server",
        int(env["AIRFLOW__API__PORT"]),
        "/execution/",
    )
    assert 8080 in _published_ports(services["airflow-api-server"]).values()
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"

    mlflow_url = urlsplit(env["MLFLOW_TRACKING_URI"])
    assert mlflow_url.hostname == "mlflow"
    assert str(mlflow_url.port) == _flag(_command(services["mlflow"]), "--port")
    assert _environment(services["api"])["MLFLOW_TRACKING_URI"] == env["MLFLOW_TRACKING_URI"]

    dags = env["AIRFLOW__CORE__DAGS_FOLDER"]
    assert dags == "/opt/marketflow/dags" and (REPO / "dags").is_dir()


def test_database_urls(services, env_example):
    env = _environment(services["airflow-api-server"])
    urls = {
        "SQL_ALCHEMY_CONN": (env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], "marketflow", "airflow"),
        "RESULT_BACKEND": (env["AIRFLOW__CELERY__RESULT_BACKEND"], "marketflow", "airflow"),
        "MARKETFLOW_DATABASE_URL": (env["MARKETFLOW_DATABASE_URL"], "marketflow", "marketflow"),
        "MLFLOW_BACKEND_STORE_URI": (
            _environment(services["mlflow"])["MLFLOW_BACKEND_STORE_URI"],
            "marketflow",
            "mlflow",
        ),
        "MARKETFLOW_API_DATABASE_URL": (
            _environment(services["api"])["MARKETFLOW_API_DATABASE_URL"],
            "marketflow_api",
            "marketflow",
        ),
        "MARKETFLOW_ADMIN_URL": (
            _environment(services["init"])["MARKETFLOW_ADMIN_URL"],
            "postgres",
            "postgres",
        ),
    }
    passwords = {
        "marketflow": TEST_ENV["MARKETFLOW_DB_PASSWORD"],
        "marketflow_api": TEST_ENV["MARKETFLOW_API_DB_PASSWORD"],
        "postgres": TEST_ENV["POSTGRES_PASSWORD"],
    }
    for what, (url, user, database) in urls.items():
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == ("postgres", 5432), what
        assert parts.username == user, what
        assert parts.password == passwords[user], what
        assert parts.path == "/" + database, what
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which requirements.txt lacks.
    for what in ("SQL_ALCHEMY_CONN", "RESULT_BACKEND", "MLFLOW_BACKEND_STORE_URI"):
        assert "postgresql+psycopg2://" in urls[what][0], what
    # The analysts' port and the admin role exist as the postgres service says.
    pg = _environment(services["postgres"])
    assert pg["POSTGRES_USER"] == "postgres"
    assert pg["POSTGRES_PASSWORD"] == TEST_ENV["POSTGRES_PASSWORD"]


def test_the_gpu_worker_serves_the_gpu_queue_on_the_gpu_image(services):
    gpu = services["airflow-worker-gpu"]
    cmd = _command(gpu)
    assert cmd[:3] == ["airflow", "celery", "worker"]
    assert _flag(cmd, "-q", "--queues") == "gpu"
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d.get("capabilities", []) for d in devices)

    cpu = services["airflow-worker"]
    cmd = _command(cpu)
    assert cmd[:3] == ["airflow", "celery", "worker"]
    default_queue = _environment(cpu)["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    assert (_flag(cmd, "-q", "--queues") or default_queue) == default_queue
    assert "gpu" not in (_flag(cmd, "-q", "--queues") or "").split(",")
    assert cpu["build"]["dockerfile"] == "docker/Dockerfile"


def test_each_airflow_component_runs_its_command(services):
    expected = {
        "airflow-api-server": ["airflow", "api-server"],
        "airflow-scheduler": ["airflow", "scheduler"],
        "airflow-dag-processor": ["airflow", "dag-processor"],
        "airflow-triggerer": ["airflow", "triggerer"],
    }
    for name, argv in expected.items():
        assert _command(services[name])[: len(argv)] == argv, name
    scheduler_env = _environment(services["airflow-scheduler"])
    assert scheduler_env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert "8974" in str(services["airflow-scheduler"]["healthcheck"]["test"])


def test_init_runs_the_bootstrap_of_marketflow_up(services):
    init = services["init"]
    script = " ".join(_command(init))
    steps = [
        "marketflow db init",
        "airflow db migrate",
        "run_dbt(['parse']",
        "airflow dags reserialize",
    ]
    positions = [script.find(step) for step in steps]
    assert all(p >= 0 for p in positions), dict(zip(steps, positions, strict=True))
    assert positions == sorted(positions), "steps out of the order of marketflow/cli.py cmd_up"
    assert init.get("restart") == "no"
    assert "MARKETFLOW_ADMIN_URL" in _environment(init)
    # The same sequence as the local `up` command.
    cli = (REPO / "marketflow" / "cli.py").read_text()
    up = cli[cli.index("def cmd_up") : cli.index("def cmd_down")]
    for marker in ("cmd_db_init", '"db", "migrate"', 'run_dbt(["parse"]', '"dags", "reserialize"'):
        assert marker in up, f"marketflow/cli.py cmd_up changed ({marker}); update the init service"


def test_mlflow_service(services):
    mlflow = services["mlflow"]
    cmd = _command(mlflow)
    assert cmd[:2] == ["mlflow", "server"]
    assert _flag(cmd, "--workers") == "1"
    assert _flag(cmd, "--host") == "0.0.0.0"
    env = _environment(mlflow)
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    destination = env["MLFLOW_ARTIFACTS_DESTINATION"]
    assert destination, "artifacts are proxied by the server"
    mounts = [str(v).split(":")[1] for v in mlflow.get("volumes", [])]
    assert any(destination.startswith(m.rstrip("/") + "/") or destination == m for m in mounts)
    # Clients reach it as http://mlflow:5000; MLflow's Host-header guard must allow that.
    allowed = env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    host = urlsplit(_environment(services["airflow-worker"])["MLFLOW_TRACKING_URI"]).netloc
    assert any(fnmatch.fnmatch(host, pattern) for pattern in allowed), host


def test_mlflow_asks_for_a_sign_in_and_the_api_reads_as_the_read_only_user(services):
    mlflow = services["mlflow"]
    assert _flag(_command(mlflow), "--app-name") == "basic-auth"
    env = _environment(mlflow)
    config = configparser.ConfigParser()
    config.read(REPO / env["MLFLOW_AUTH_CONFIG_PATH"].removeprefix("/opt/marketflow/"))
    assert config["mlflow"]["default_permission"] == "READ"
    assert "admin_password" not in config["mlflow"]  # from the environment only
    # The user store is on the server's volume: it survives a container restart.
    store = config["mlflow"]["database_uri"].removeprefix("sqlite:///")
    mounts = [str(v).split(":")[1] for v in mlflow.get("volumes", [])]
    assert any(store.startswith(m.rstrip("/") + "/") for m in mounts), store
    pipeline = _environment(services["airflow-worker"])
    assert pipeline["MLFLOW_TRACKING_USERNAME"] == env["MLFLOW_AUTH_ADMIN_USERNAME"]
    assert pipeline["MLFLOW_TRACKING_PASSWORD"] == env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    api = _environment(services["api"])
    assert api["MLFLOW_TRACKING_USERNAME"] == pipeline["MARKETFLOW_MLFLOW_READER_USERNAME"]
    assert api["MLFLOW_TRACKING_PASSWORD"] == pipeline["MARKETFLOW_MLFLOW_READER_PASSWORD"]
    assert api["MLFLOW_TRACKING_USERNAME"] != env["MLFLOW_AUTH_ADMIN_USERNAME"]
    reader = services["mlflow-reader"]
    assert _command(reader) == ["marketflow", "mlflow-reader"]
    assert reader["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["mlflow-reader"]["condition"] == (
        "service_completed_successfully"
    )


def test_api_service(services):
    api = services["api"]
    cmd = _command(api)
    assert cmd[0] == "gunicorn" and _flag(cmd, "-c", "--config") == "api/gunicorn.conf.py"
    assert (REPO / "api" / "gunicorn.conf.py").is_file()
    env = _environment(api)
    bind_port = int(env["MARKETFLOW_API_BIND"].rsplit(":", 1)[1])
    assert bind_port in _published_ports(api).values()
    assert env["MARKETFLOW_API_BIND"].startswith("0.0.0.0:")
    assert urlsplit(env["MARKETFLOW_API_DATABASE_URL"]).username == "marketflow_api"
    # The API never gets the owner's or the superuser's credentials.
    assert TEST_ENV["MARKETFLOW_DB_PASSWORD"] not in str(api)
    assert TEST_ENV["POSTGRES_PASSWORD"] not in str(api)


def test_volumes_and_bind_mounts_exist(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
    pg_mounts = [str(v) for v in services["postgres"]["volumes"]]
    assert any(
        m.startswith("./docker/postgres/init.sql:/docker-entrypoint-initdb.d/") for m in pg_mounts
    )


def test_build_contexts_and_dockerfiles_exist(services):
    for name, svc in services.items():
        build = svc.get("build")
        if not build:
            continue
        context = REPO / build.get("context", ".")
        assert context.resolve() == REPO, f"{name}: build context must be the repository root"
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name


def test_docker_compose_yml_is_what_the_stack_definition_gives():
    """docker-compose.yml is generated from stack.yaml (+ docker/compose.base.yaml): an edit
    of either without `marketflow stack compose` fails here."""
    from marketflow import stack

    assert COMPOSE_FILE.read_text() == stack.compose_text(), (
        "docker-compose.yml is stale: run `marketflow stack compose`"
    )


def test_the_local_stack_and_compose_run_the_same_processes(tmp_path, monkeypatch):
    """Both read stack.yaml: every local process is a compose service running the same
    program with the same arguments, up to the values each target fills in."""
    monkeypatch.setenv("MARKETFLOW_DATA_DIR", str(tmp_path))
    from marketflow import services as local
    from marketflow import stack

    compose_services = stack.compose()["services"]
    local_stack = local.services(everything=True)
    assert [svc.name for svc in local_stack] == [
        name for name in compose_services if name in {svc.name for svc in local_stack}
    ], "the same start order"
    for svc in local_stack:
        command = compose_services[svc.name]["command"]
        assert Path(svc.argv[0]).name == command[0], svc.name
        assert len(svc.argv) == len(command), svc.name
        flags = [a for a in svc.argv[1:] if a.startswith("-")]
        assert flags == [a for a in command[1:] if a.startswith("-")], svc.name
        assert set(svc.env) <= set(compose_services[svc.name]["environment"]), svc.name
    # The local stack fills them from the settings (no compose variable left in a value).
    for svc in local_stack:
        for value in [*svc.argv, *svc.env.values()]:
            assert "${" not in value and "{" not in value.replace('{"', ""), (svc.name, value)


# --------------------------------------------------------------------------------------------
# .env.example
# --------------------------------------------------------------------------------------------


def _variables_read_by_code() -> dict[str, set[str]]:
    """{variable: files} for MARKETFLOW_* anywhere in the code and the tests, and any variable
    the code reads from the environment by name (os.environ / os.getenv / _env helpers / dbt's
    env_var)."""
    found: dict[str, set[str]] = {}
    read = re.compile(
        r"(?:os\.environ\.get|os\.getenv|_env(?:_int)?)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']"
        r"|os\.environ\[\s*[\"']([A-Z][A-Z0-9_]*)[\"']\s*\](?!\s*=[^=])"
    )
    mention = re.compile(r"\bMARKETFLOW_[A-Z0-9_]*[A-Z0-9]\b")
    product = set(_code_files(CODE_DIRS))
    for path in _code_files():
        text = path.read_text()
        rel = str(path.relative_to(REPO))
        names = set(mention.findall(text))
        if path in product:
            names |= {a or b for a, b in read.findall(text)}
        for name in names:
            found.setdefault(name, set()).add(rel)
    for name in re.findall(r"env_var\(\s*['\"]([A-Z][A-Z0-9_]*)['\"]", DBT_PROFILES.read_text()):
        found.setdefault(name, set()).add("dbt/profiles.yml")
    for name in _settings_variables():
        found.setdefault(name, set()).add("core/settings.py")
    return found


def _settings_variables() -> dict[str, tuple[type, str, Any]]:
    """{variable: (section class, field, default)} for every field of core/settings.py's tree
    that is read from a variable of its own name (the first of its validation aliases)."""
    from pydantic import AliasChoices

    from core.settings import Settings

    out: dict[str, tuple[type, str, Any]] = {"MARKETFLOW_DATA_DIR": (Settings, "data_dir", None)}
    for section in Settings.model_fields.values():
        cls = section.default_factory
        for field_name, info in getattr(cls, "model_fields", {}).items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
                out[alias.choices[0]] = (cls, field_name, info.default)
    return out


def test_every_variable_the_code_reads_is_in_env_example(env_example):
    code_vars = _variables_read_by_code()
    assert "MARKETFLOW_DATABASE_URL" in code_vars and "MLFLOW_TRACKING_URI" in code_vars
    missing = {name: sorted(files) for name, files in code_vars.items() if name not in env_example}
    assert not missing, f"read by the code, not in .env.example: {missing}"


def test_every_marketflow_variable_in_compose_is_in_env_example(compose_text, env_example):
    names = set(re.findall(r"\bMARKETFLOW_[A-Z0-9_]*[A-Z0-9]\b", compose_text))
    assert "MARKETFLOW_DATABASE_URL" in names
    missing = sorted(names - set(env_example))
    assert not missing, f"used in docker-compose.yml, not in .env.example: {missing}"


def test_every_variable_compose_interpolates_is_in_env_example(compose_text, env_example):
    names = {m.group("name") or m.group("bare") for m in _VAR_REF.finditer(compose_text)}
    names.discard(None)
    missing = sorted(names - set(env_example))
    assert not missing, f"docker-compose.yml interpolates, .env.example lacks: {missing}"


def test_env_example_documents_nothing_stale(compose_text, env_example):
    used = set(_variables_read_by_code())
    used |= {m.group("name") or m.group("bare") for m in _VAR_REF.finditer(compose_text)}
    used.add("COMPOSE_PROFILES")  # read by docker compose itself
    stale = sorted(set(env_example) - used)
    assert not stale, f"in .env.example but read by nothing: {stale}"


def test_env_example_explains_every_variable():
    """Each NAME=value line has a comment above it, or heads a group under one comment."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line or line.startswith("#"):
            continue
        j = i - 1
        while j >= 0 and lines[j] and not lines[j].startswith("#"):
            j -= 1
        assert j >= 0 and lines[j].startswith("#"), f".env.example: {line} is unexplained"


def test_env_example_defaults_match_the_code(env_example):
    literal = re.compile(
        r"(?:os\.environ\.get|os\.getenv|_env)\(\s*\"([A-Z][A-Z0-9_]*)\",\s*\"([^\"]*)\"\s*\)"
        r"|_env_int\(\s*\"([A-Z][A-Z0-9_]*)\",\s*(\d+)\s*\)"
    )
    checked = 0
    for path in _code_files():
        for m in literal.finditer(path.read_text()):
            name, default = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            assert env_example.get(name) == default, (
                f"{path.relative_to(REPO)}: {name} defaults to {default!r}, "
                f".env.example says {env_example.get(name)!r}"
            )
            checked += 1
    for name, default in re.findall(
        r"env_var\(\s*'([A-Z][A-Z0-9_]*)',\s*'([^']*)'\s*\)", DBT_PROFILES.read_text()
    ):
        assert env_example.get(name) == default, f"dbt/profiles.yml: {name}"
        checked += 1
    # The settings tree: the example's value, read as the settings read it, is the default.
    for name, (cls, field_name, default) in _settings_variables().items():
        example = env_example.get(name)
        if field_name == "data_dir" or not example:  # empty: the default, by definition
            continue
        parsed = getattr(cls(**{field_name: example}), field_name)
        assert parsed == default, (
            f"core/settings.py: {name} defaults to {default!r}, .env.example says {example!r}"
        )
        checked += 1
    assert checked >= 30


def test_env_example_holds_no_secrets(env_example):
    for name, value in env_example.items():
        if re.search(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$", name):
            assert value == "", f".env.example: {name} must stay empty (a placeholder)"
        if "://" in value:
            assert urlsplit(value).password is None, f".env.example: {name} carries a password"


# --------------------------------------------------------------------------------------------
# docker/
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_dockerfile_copies_files_that_exist(flavour):
    instructions = _dockerfile_instructions(DOCKERFILES[flavour])
    copied: list[str] = []
    for word, args in instructions:
        if word not in ("COPY", "ADD"):
            continue
        parts = [a for a in args.split() if not a.startswith("--")]
        if "--from=" in args:
            continue
        *sources, _dest = parts
        for source in sources:
            assert (REPO / source).exists(), f"{DOCKERFILES[flavour].name}: COPY {source}"
            copied.append(source)
    assert "requirements.txt" in copied
    assert "docker/image-requirements.sh" in copied
    assert "." in copied
    if flavour == "gpu":
        assert "docker/constraints-gpu.txt" in copied


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_dockerfile_layout(flavour):
    path = DOCKERFILES[flavour]
    text = path.read_text()
    instructions = _dockerfile_instructions(path)
    words = [w for w, _ in instructions]
    args = {w: a for w, a in instructions}  # the last of each
    assert args["WORKDIR"] == "/opt/marketflow"
    users = [a for w, a in instructions if w == "USER"]
    assert users and users[-1] not in ("root", "0"), "runs as a non-root user"
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "COPY")
    assert re.search(r"uv pip install --no-deps -e /opt/marketflow", text)
    assert f"image-requirements.sh {flavour}" in text
    assert "AIRFLOW_HOME=/opt/airflow" in text
    assert "/opt/airflow/logs" in text and "/opt/airflow/auth" in text
    assert "run_dbt(['parse']" in text, "bakes the dbt manifest Cosmos reads"
    froms = re.findall(r"^ARG (PYTHON_IMAGE|CUDA_IMAGE)=(\S+)", text, re.M)
    if flavour == "cpu":
        assert [name for name, _ in froms] == ["PYTHON_IMAGE"]
        assert froms[0][1].startswith("python:3.11-slim")
        assert '--extra-index-url "${TORCH_INDEX_URL}"' in text
        torch_index = re.search(r"^ARG TORCH_INDEX_URL=(\S+)$", text, re.M)
        assert torch_index and torch_index.group(1) == "https://download.pytorch.org/whl/cpu"
    else:
        assert froms and froms[0][0] == "CUDA_IMAGE" and froms[0][1].startswith("nvidia/cuda:")
        assert "-runtime-" in froms[0][1]
        assert re.search(r"^ARG PYTHON_VERSION=3\.11$", text, re.M)
        assert "-c /tmp/requirements/constraints-gpu.txt" in text
    # Every build arg is documented in the header.
    header = text.split("\nARG ", 1)[0]
    for name in re.findall(r"^ARG (\w+)", text, re.M):
        assert name in header, f"{path.name}: build arg {name} undocumented"
    # Paths the compose file relies on exist in the image.
    for needed in ("/var/lib/marketflow", "/var/lib/mlflow"):
        assert needed in text


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_dockerignore_keeps_local_state_out(flavour):
    ignore = DOCKERFILES[flavour].with_name(DOCKERFILES[flavour].name + ".dockerignore")
    patterns = {line.strip() for line in ignore.read_text().splitlines() if line and line[0] != "#"}
    for pattern in (".git", ".venv", ".data", ".env", "dbt/target", "dbt/logs"):
        assert pattern in patterns, f"{ignore.name}: {pattern}"
    for needed in ("requirements.txt", "docker", "dags", "dbt", "marketflow", "api", "ml"):
        assert needed not in patterns


def _rewrite(flavour: str) -> list[str]:
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    proc = subprocess.run(
        [sh, str(DOCKER_DIR / "image-requirements.sh"), flavour],
        input=(REPO / "requirements.txt").read_text(),
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.splitlines()


def test_image_requirements_cpu_is_the_lock_as_it_is():
    original = (REPO / "requirements.txt").read_text().splitlines()
    cpu = _rewrite("cpu")
    assert cpu == original
    # A public pin the CPU index's `X+cpu` build satisfies, and the CUDA-free xgboost.
    assert any(re.fullmatch(r"torch==[0-9.]+", line) for line in cpu)
    assert any(line.startswith("xgboost-cpu==") for line in cpu)


def test_image_requirements_gpu_swaps_xgboost_at_the_same_version():
    original = (REPO / "requirements.txt").read_text().splitlines()
    gpu = _rewrite("gpu")
    torch = next(line for line in original if line.startswith("torch=="))
    xgb_cpu = next(line for line in original if line.startswith("xgboost-cpu=="))
    assert torch in gpu
    assert "xgboost==" + xgb_cpu.split("==")[1] in gpu
    assert not any(line.startswith("xgboost-cpu") for line in gpu)
    assert len(gpu) == len(original)


def test_image_requirements_refuses_an_unknown_flavour():
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    proc = subprocess.run(
        [sh, str(DOCKER_DIR / "image-requirements.sh"), "tpu"], input="", capture_output=True
    )
    assert proc.returncode == 2


def test_extra_pins_add_to_requirements_without_overriding_them():
    base = _pins(REPO / "requirements.txt")
    gpu = _pins(DOCKER_DIR / "constraints-gpu.txt")
    # The CeleryExecutor is a runtime dependency now (the local stack runs it too).
    assert {"apache-airflow-providers-celery", "celery", "kombu", "redis"} <= set(base)
    assert not set(gpu) & set(base), "constraints-gpu.txt re-pins a package"
    assert not {"torch", "xgboost", "xgboost-cpu"} & set(gpu), "versions follow requirements.txt"
    assert base["apache-airflow"].startswith("3.3."), "the celery pin was resolved for Airflow 3.3"


def _created_names(sql: str, catalog: str) -> set[str]:
    """The names of `select format('create ...') from unnest(array[...]) ... from <catalog>`."""
    pattern = r"unnest\(array\[([^\]]*)\]\) as name\s+where not exists \(select from " + catalog
    (names,) = re.findall(pattern, sql)
    return {n.strip().strip("'") for n in names.split(",")}


def test_init_sql_creates_the_roles_and_databases_compose_uses(services):
    from core.db import READ_ONLY_ROLES

    sql = INIT_SQL.read_text()
    roles = _created_names(sql, "pg_roles")
    databases = _created_names(sql, "pg_database")
    assert roles == {"marketflow", *READ_ONLY_ROLES}
    assert databases == {"marketflow", "airflow", "mlflow"}
    assert "create database %I owner marketflow" in sql

    used_users, used_dbs = set(), set()
    for svc in services.values():
        for value in _environment(svc).values():
            if value.startswith(("postgresql", "db+postgresql")) and "@postgres:" in value:
                parts = urlsplit(value.removeprefix("db+"))
                used_users.add(parts.username)
                used_dbs.add(parts.path.lstrip("/"))
    assert used_users - {"postgres"} <= roles
    assert used_dbs - {"postgres"} <= databases

    # Every password init.sql reads is in the postgres container's environment.
    wanted = set(re.findall(r"^\\getenv \w+ (\w+)$", sql, re.M))
    assert wanted == {
        "MARKETFLOW_DB_PASSWORD",
        "MARKETFLOW_API_DB_PASSWORD",
        "MARKETFLOW_ANALYST_DB_PASSWORD",
    }
    assert wanted <= set(_environment(services["postgres"]))
    major = int(re.match(r"\d+", services["postgres"]["image"].split(":")[1]).group(0))
    assert major >= 15, "init.sql uses psql's \\getenv (PostgreSQL 15+)"


# --------------------------------------------------------------------------------------------
# the real parser, where installed
# --------------------------------------------------------------------------------------------


def _compose_cli() -> list[str] | None:
    """`docker compose` (v2) where the plugin is installed; v1's docker-compose lacks `name:`."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True)
    return [docker, "compose"] if probe.returncode == 0 else None


def test_compose_file_follows_the_compose_specification():
    """The Compose Specification's JSON schema (vendored by check-jsonschema): unknown keys,
    wrong types and misspelt conditions fail. The schema cannot resolve `${VAR}`; the test
    below does, where `docker compose` is installed."""
    cli = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    proc = subprocess.run(
        [cli, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_check_rejects_a_wrong_compose_file(tmp_path):
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  api:\n    image: x\n    depends_on:\n"
                   "      db: {condition: service_started_ok}\n")  # fmt: skip
    cli = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    proc = subprocess.run(
        [cli, "--builtin-schema", "vendor.compose-spec", str(bad)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and "condition" in proc.stdout, proc.stdout


def test_docker_compose_config_validates(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("docker compose is not installed")
    env = {**os.environ, **TEST_ENV, "COMPOSE_PROFILES": "gpu"}
    proc = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_api_reads_the_drift_reports_the_workers_write(services):
    """GET /api/v1/drift/<run_id>/report opens the path the monitoring task stored: the API
    must see the workers' data folder at the same path (read-only)."""

    def mounts(name: str) -> dict[str, str]:
        volumes = [v for v in services[name].get("volumes", []) if isinstance(v, str)]
        return {v.split(":")[1]: v for v in volumes if v.count(":") >= 1}

    data_dir = _environment(services["airflow-worker"])["MARKETFLOW_DATA_DIR"]
    assert _environment(services["api"])["MARKETFLOW_DATA_DIR"] == data_dir
    worker_volume = mounts("airflow-worker")[data_dir].split(":")[0]
    api_mount = mounts("api")[data_dir]
    assert api_mount.split(":")[0] == worker_volume
    assert api_mount.endswith(":ro")
