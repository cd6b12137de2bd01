"""Run MarketFlow's dbt project (dbt/) in-process against a given database.

dbt reads its connection from the MARKETFLOW_DBT_* variables (dbt/profiles.yml); this
module maps a PostgreSQL URL onto them for the duration of one call. No Airflow imports,
and dbt itself is imported only when a command runs, so importing this module is cheap.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from core.settings import DBT_PROJECT_DIR, environment, get_settings

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult


def target_path() -> Path:
    """Where dbt writes manifest, run results and docs: dbt/target unless the settings name
    another folder (each test session sets its own, so parallel runs never share partial-parse
    state)."""
    return get_settings().dbt.target


def _dbt_settings_env() -> dict[str, str]:
    # dbt reads the paths through click's envvar support, so they apply to every command;
    # the slice count through env_var() in the materialization (macros/build_in_slices.sql),
    # resolved here so that "0 = every core" means this machine's cores.
    settings = get_settings().dbt
    return {
        "DBT_TARGET_PATH": str(settings.target),
        "DBT_LOG_PATH": str(settings.logs),
        "MARKETFLOW_DBT_FEATURE_SLICES": str(settings.slices),
    }


_FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
_NO_MATCH_IS_ERROR = '{"error": ["NoNodesForSelectionCriteria"]}'

# dbt keeps global state (flags, event manager, adapters) and we swap os.environ around a
# call: one invocation per process at a time.
_dbt_lock = threading.Lock()


class DbtError(RuntimeError):
    """A dbt command did not succeed; the message names the failed nodes."""


def dbt_env(database_url: str) -> dict[str, str]:
    """The MARKETFLOW_DBT_* variables that point dbt/profiles.yml at `database_url`."""
    parts = urlsplit(database_url)
    if not parts.scheme.startswith("postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://...")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ValueError("the database URL names no database")
    return {
        "MARKETFLOW_DBT_HOST": parts.hostname or "127.0.0.1",
        "MARKETFLOW_DBT_PORT": str(parts.port or 5432),
        "MARKETFLOW_DBT_USER": unquote(parts.username or "marketflow"),
        "MARKETFLOW_DBT_PASSWORD": unquote(parts.password or ""),
        "MARKETFLOW_DBT_DBNAME": dbname,
    }


def _failure_message(args: list[str], res: dbtRunnerResult) -> str:
    command = "dbt " + " ".join(args)
    lines: list[str] = []
    skipped = 0
    for node_result in getattr(res.result, "results", None) or []:
        status = str(getattr(node_result.status, "value", node_result.status))
        skipped += status == "skipped"
        if status in _FAILED_STATUSES:
            node = getattr(node_result, "node", None)
            name = getattr(node, "unique_id", None) or getattr(node, "name", "?")
            detail = (node_result.message or "").strip().replace("\n", " ")
            lines.append(f"  {name}: {status}: {detail}")
    if lines:
        then = f"; {skipped} downstream node(s) skipped" if skipped else ""
        return f"{command} failed on {len(lines)} node(s){then}:\n" + "\n".join(lines)
    if res.exception is not None:
        return f"{command} failed: {type(res.exception).__name__}: {res.exception}"
    return f"{command} failed (no failed node reported; see {DBT_PROJECT_DIR / 'logs'})"


def run_dbt(args: list[str], database_url: str) -> None:
    """Run `dbt <args>` on the project in dbt/ against `database_url`; raise DbtError on failure."""
    from dbt.cli.main import dbtRunner

    cli_args = [
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    with _dbt_lock, environment({**dbt_env(database_url), **_dbt_settings_env()}):
        res = dbtRunner().invoke(cli_args)
    if not res.success:
        raise DbtError(_failure_message(args, res))


def build(database_url: str, select: str | None = None) -> None:
    """`dbt build`: models, then their tests, layer by layer; stops downstream of a failure.

    A `select` that matches nothing is an error, not a silent success with nothing built.
    """
    selection = ["--select", select, "--warn-error-options", _NO_MATCH_IS_ERROR] if select else []
    run_dbt(["build", *selection], database_url)


DOCS_FILES = ("index.html", "manifest.json", "catalog.json")


def docs_dir() -> Path:
    """Where the published dbt docs site lives: `$MARKETFLOW_DATA_DIR/dbt-docs`, which the
    Airflow api-server serves (Cosmos's plugin, Browse -> "dbt docs") and, in compose, a
    volume every container shares."""
    return get_settings().data_dir / "dbt-docs"


def docs_generate(database_url: str) -> Path:
    """`dbt docs generate` (manifest.json, catalog.json and index.html under `target_path()`),
    then publish the three files to `docs_dir()`, each replaced whole (a reader never sees
    half a file). Returns the published index.html."""
    run_dbt(["docs", "generate"], database_url)
    published = docs_dir()
    published.mkdir(parents=True, exist_ok=True)
    for name in DOCS_FILES:
        staged = published / f".{name}.tmp"
        shutil.copyfile(target_path() / name, staged)
        staged.replace(published / name)
    return published / "index.html"


__all__ = [
    "DBT_PROJECT_DIR",
    "DbtError",
    "build",
    "dbt_env",
    "docs_dir",
    "docs_generate",
    "run_dbt",
    "target_path",
]
