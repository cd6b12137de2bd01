"""Run a suite against its table through a Great Expectations checkpoint and record the outcome.

Each run builds an ephemeral GX context (no GX project on disk), a Postgres data source,
a batch, a validation definition and a checkpoint, runs it, disposes of the SQLAlchemy
engines it opened, and writes one row to `monitoring.validation_runs` (with the run's
start, scope and number of rows validated).

The batch is the rows changed since the suite last passed (expectations/scope.py), copied
into a scratch table in the `monitoring` schema that the run drops, or, with `full=True`
(and before a suite's first pass), the whole table.

The checkpoint's UpdateDataDocsAction renders the run as Data Docs HTML into
`<docs_dir>/<suite>/index.html` (default docs_dir: `$MARKETFLOW_DATA_DIR/reports/data_docs`),
one site per suite so each always shows its latest validation, passed or failed, and beside it
`summary.html`, the same run as one self-contained page that renders offline (the Data Docs
load their styles and scripts from CDNs; see expectations/report.py).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg2.extras import Json

from core.db import connect
from core.urls import libpq_url, sqlalchemy_url
from expectations._gx import load_gx
from expectations.report import write_summary_page
from expectations.scope import WHOLE_TABLE, Scope, changed_rows
from expectations.suites import KEY_COLUMNS, SUITES

log = logging.getLogger(__name__)

# Rows shown per failed expectation, identified by their key columns.
EXAMPLE_ROWS = 5
_DOMAIN_KWARGS = ("batch_id", "column", "column_list", "column_A", "column_B")


@dataclass(frozen=True)
class ValidationSummary:
    suite: str
    data_asset: str
    success: bool
    evaluated: int
    failed: int
    # One dict per failed expectation: expectation, column, expected, observed (JSON-safe).
    failed_expectations: list[dict[str, Any]] = field(default_factory=list)
    # Id of the `monitoring.validation_runs` row that records this run.
    validation_run_id: int | None = None
    # The Data Docs page of this run's site (index.html), when it was written.
    data_docs: str | None = None
    # The run's self-contained page (summary.html, expectations/report.py).
    report: str | None = None
    # Which rows were validated (expectations/scope.py) and how many.
    scope: str = WHOLE_TABLE.description
    rows_validated: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """A small JSON-safe dict (what an Airflow task returns to XCom)."""
        return {
            "suite": self.suite,
            "data_asset": self.data_asset,
            "success": self.success,
            "evaluated": self.evaluated,
            "failed": self.failed,
            "validation_run_id": self.validation_run_id,
            "data_docs": self.data_docs,
            "report": self.report,
            "scope": self.scope,
            "rows_validated": self.rows_validated,
        }

    def describe(self) -> str:
        verdict = "passed" if self.success else "FAILED"
        rows = "" if self.rows_validated is None else f"{self.rows_validated:,} rows, "
        head = (
            f"suite {self.suite} on {self.data_asset} ({rows}{self.scope}) {verdict}: "
            f"{self.evaluated - self.failed}/{self.evaluated} expectations met"
        )
        return "\n".join([head, *(f"  - {_describe_failure(f)}" for f in self.failed_expectations)])


class ValidationFailed(RuntimeError):
    """A suite found bad data; the message lists every failed expectation."""

    def __init__(self, summary: ValidationSummary) -> None:
        super().__init__(summary.describe())
        self.summary = summary


def default_docs_dir() -> Path:
    """Where Data Docs go unless the caller says otherwise: reports/data_docs in the data dir."""
    from core.settings import get_settings

    return get_settings().reports_dir / "data_docs"


def run_checkpoint(
    database_url: str,
    suite: str,
    docs_dir: Path | None = None,
    *,
    full: bool = False,
    run_key: str | None = None,
) -> ValidationSummary:
    """Validate the rows of the table behind `suite` changed since it last passed (the whole
    table with `full=True`), record the run and return its summary. A run recorded under the
    same `run_key` (an Airflow task's dag/run/task) is replaced, not added to.

    Bad data gives `success=False`; a missing table or an unreachable database raises.
    Data Docs for the run are written to `docs_dir/<suite>/` (see the module docstring).
    """
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; known suites: {', '.join(sorted(SUITES))}")
    schema, table, build_suite = SUITES[suite]
    data_asset = f"{schema}.{table}"
    site_dir = (docs_dir or default_docs_dir()) / suite

    started = time.perf_counter()
    with connect(libpq_url(database_url)) as conn, conn.cursor() as cur:
        cur.execute("select clock_timestamp()")
        (started_at,) = cur.fetchone() or (None,)
        scope = WHOLE_TABLE if full else changed_rows(cur, suite)
    with _scope_table(database_url, schema, table, scope) as (batch_schema, batch_table, rows):
        result = _run_gx_checkpoint(
            database_url,
            suite,
            batch_schema,
            batch_table,
            data_asset,
            lambda: build_suite(scope),
            site_dir,
        )
    statistics = result.statistics
    failures = [_failure(r) for r in result.results if not r.success]
    summary = ValidationSummary(
        suite=suite,
        data_asset=data_asset,
        success=bool(result.success),
        evaluated=int(statistics["evaluated_expectations"]),
        failed=int(statistics["unsuccessful_expectations"]),
        failed_expectations=failures,
        data_docs=str(site_dir / "index.html") if (site_dir / "index.html").exists() else None,
        scope=scope.description,
        rows_validated=rows,
    )
    summary = _record(database_url, summary, started_at, run_key)
    page = write_summary_page(
        site_dir / "summary.html",
        suite=suite,
        data_asset=data_asset,
        success=summary.success,
        scope=summary.scope,
        rows_validated=rows,
        run_at=f"{started_at:%Y-%m-%d %H:%M:%S %Z}".strip(),
        expectations=[_expectation(r) for r in result.results],
    )
    summary = replace(summary, report=str(page))

    elapsed = time.perf_counter() - started
    level = logging.INFO if summary.success else logging.WARNING
    log.log(level, "checkpoint ran in %.1fs: %s", elapsed, summary.describe())
    return summary


def validate_or_raise(
    database_url: str,
    suite: str,
    docs_dir: Path | None = None,
    *,
    full: bool = False,
    run_key: str | None = None,
) -> ValidationSummary:
    """`run_checkpoint`, raising `ValidationFailed` when any expectation fails."""
    summary = run_checkpoint(database_url, suite, docs_dir, full=full, run_key=run_key)
    if not summary.success:
        raise ValidationFailed(summary)
    return summary


@contextmanager
def _scope_table(
    database_url: str, schema: str, table: str, scope: Scope
) -> Iterator[tuple[str, str, int | None]]:
    """(schema, table, rows) of the batch to validate: the table itself for the whole table
    (rows not counted: that would be one more pass), else a scratch copy of the scope's rows
    in `monitoring`, dropped on the way out. A real table, not a temporary one: GX reads
    through its own pooled connections, which would not see another session's temp table."""
    if scope.full:
        yield schema, table, None
        return
    scratch = f"gx_scope_{table}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with connect(libpq_url(database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            f"create unlogged table monitoring.{scratch} as"
            f" select * from {schema}.{table} where {scope.predicate}"
        )
        rows = cur.rowcount
    try:
        yield "monitoring", scratch, rows
    finally:
        with connect(libpq_url(database_url)) as conn, conn.cursor() as cur:
            cur.execute(f"drop table if exists monitoring.{scratch}")


def _run_gx_checkpoint(
    database_url: str,
    suite_name: str,
    schema: str,
    table: str,
    asset_name: str,
    build_suite: Callable[[], Any],
    site_dir: Path,
) -> Any:
    """Run the checkpoint; returns GX's ExpectationSuiteValidationResult."""
    gx = load_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            # No temporary Data Docs site, no tqdm bars in task logs, no usage statistics.
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            progress_bars=ProgressBarsConfig(globally=False),
            analytics_enabled=False,
        ),
    )
    site_dir.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(
        site_name=suite_name,
        site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(site_dir),
            },
        },
    )
    datasource = context.data_sources.add_postgres(
        name="marketflow",
        connection_string=sqlalchemy_url(database_url),
        # Read only: no temp tables. GX 1.14+ deprecates a table asset's `schema_name` in
        # favour of the connection's own schema, which for Postgres is its search_path.
        create_temp_table=False,
        kwargs={"connect_args": {"options": f"-csearch_path={schema}"}},
    )
    try:
        batch = datasource.add_table_asset(
            name=asset_name, table_name=table
        ).add_batch_definition_whole_table("whole_table")
        suite = context.suites.add(build_suite())
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"{suite_name}_checkpoint",
                validation_definitions=[validation],
                actions=[
                    gx.checkpoint.UpdateDataDocsAction(
                        name="update_data_docs", site_names=[suite_name]
                    )
                ],
                result_format={
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": EXAMPLE_ROWS,
                    "unexpected_index_column_names": list(KEY_COLUMNS),
                },
            )
        )
        checkpoint_result = checkpoint.run()
        (result,) = checkpoint_result.run_results.values()
        return result
    finally:
        # The data source and its execution engine each hold a pooled connection.
        datasource.get_execution_engine().close()
        datasource.get_engine().dispose()


def _expectation(result: Any) -> dict[str, Any]:
    """Any expectation's result for the summary page (a failure's fields, and its verdict)."""
    return {**_failure(result), "success": bool(result.success)}


def _failure(result: Any) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = config.kwargs
    return _json_safe(
        {
            "expectation": config.type,
            "column": _column_label(kwargs),
            # A SQL check is named by its description; its query is in the suite (and Data Docs).
            "expected": (
                {"check": config.description}
                if "unexpected_rows_query" in kwargs
                else {k: v for k, v in kwargs.items() if k not in _DOMAIN_KWARGS}
            ),
            "observed": _observed(result),
        }
    )


def _column_label(kwargs: dict[str, Any]) -> str | None:
    if "column" in kwargs:
        return kwargs["column"]
    if "column_list" in kwargs:
        return ", ".join(kwargs["column_list"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return None


def _observed(result: Any) -> Any:
    error = _exception_message(result.exception_info)
    if error:
        return {"error": error}
    details = result.result or {}
    if "observed_value" in details:
        return details["observed_value"]
    return {
        "unexpected_count": details.get("unexpected_count"),
        "unexpected_percent": details.get("unexpected_percent"),
        "examples": details.get("partial_unexpected_index_list")
        or details.get("partial_unexpected_list")
        or [],
    }


def _exception_message(exception_info: Any) -> str | None:
    """GX reports an expectation's own error flat, and metric errors keyed by metric id."""
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else exception_info.values()
    messages = [i.get("exception_message") for i in infos if i.get("raised_exception")]
    return "; ".join(sorted({m for m in messages if m})) or None


def _describe_failure(failure: dict[str, Any]) -> str:
    column = f" [{failure['column']}]" if failure.get("column") else ""
    expected = ", ".join(f"{k}={v}" for k, v in failure.get("expected", {}).items())
    observed = failure.get("observed")
    if isinstance(observed, dict) and "error" in observed:
        found = f"error: {observed['error']}"
    elif isinstance(observed, dict):
        examples = "; ".join(json.dumps(e) for e in observed.get("examples", [])[:EXAMPLE_ROWS])
        percent = observed.get("unexpected_percent")
        share = f" ({percent:.2f}%)" if isinstance(percent, int | float) else ""
        found = f"{observed.get('unexpected_count')} unexpected row(s){share}, e.g. {examples}"
    else:
        found = f"observed {observed}"
    return f"{failure['expectation']}{column} expected {expected or 'to hold'}; {found}"


def _record(
    database_url: str, summary: ValidationSummary, started_at: datetime, run_key: str | None
) -> ValidationSummary:
    with connect(libpq_url(database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            """
            insert into monitoring.validation_runs
                (suite, data_asset, success, evaluated, failed, failed_expectations,
                 started_at, scope, rows_validated, run_key)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            on conflict (suite, run_key) where run_key is not null do update set
                data_asset = excluded.data_asset, success = excluded.success,
                evaluated = excluded.evaluated, failed = excluded.failed,
                failed_expectations = excluded.failed_expectations,
                started_at = excluded.started_at, scope = excluded.scope,
                rows_validated = excluded.rows_validated, created_at = now()
            returning id
            """,
            (
                summary.suite,
                summary.data_asset,
                summary.success,
                summary.evaluated,
                summary.failed,
                Json(summary.failed_expectations),
                started_at,
                summary.scope,
                summary.rows_validated,
                run_key,
            ),
        )
        row = cur.fetchone()
        assert row is not None  # insert ... returning yields the row it inserted
        (run_id,) = row
    return replace(summary, validation_run_id=run_id)


def _json_safe(value: Any) -> Any:
    """Dates to ISO strings, tuples to lists: what jsonb and the logs can carry."""
    return json.loads(json.dumps(value, default=str))
