"""Database bootstrap: roles, databases and MarketFlow's own schemas, all idempotent.

`marketflow db init` runs this before anything else; tests run it against their own
databases. dbt owns `staging`, `intermediate` and `marts`; this module owns the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import resources
from urllib.parse import urlsplit

import psycopg2
from psycopg2 import sql

from marketflow.settings import Settings, database_name, get_settings, with_database

log = logging.getLogger(__name__)

READ_ONLY_ROLES = ("marketflow_analyst", "marketflow_api")


def connect(url: str | None = None, **kwargs):  # noqa: ANN201 - psycopg2 connection
    return psycopg2.connect(url or get_settings().database_url, **kwargs)


def _role_exists(cur, role: str) -> bool:
    cur.execute("select 1 from pg_roles where rolname = %s", (role,))
    return cur.fetchone() is not None


def ensure_role(admin_url: str, role: str, login: bool = True) -> None:
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        if not _role_exists(cur, role):
            # Two concurrent bootstraps may race here; the loser sees duplicate_object.
            try:
                cur.execute(
                    sql.SQL("create role {} {}").format(
                        sql.Identifier(role), sql.SQL("login" if login else "nologin")
                    )
                )
            except psycopg2.errors.DuplicateObject:
                conn.rollback()
    conn.close()


def ensure_database(admin_url: str, database: str, owner: str) -> bool:
    """Create `database` owned by `owner` unless it exists. Returns True when created."""
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (database,))
            if cur.fetchone():
                return False
            cur.execute(
                sql.SQL("create database {} owner {}").format(
                    sql.Identifier(database), sql.Identifier(owner)
                )
            )
            log.info("created database %s (owner %s)", database, owner)
            return True
    finally:
        conn.close()


def drop_database(admin_url: str, database: str) -> None:
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database))
            )
    finally:
        conn.close()


def _run_sql_file(url: str, name: str) -> None:
    text = resources.files("marketflow").joinpath("sql", name).read_text()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(text)
    conn.close()


def init_database(url: str, admin_url: str) -> None:
    """Roles, the database itself, MarketFlow's schemas and the read-only grants."""
    owner = urlsplit(url).username or "marketflow"
    ensure_role(admin_url, owner)
    for role in READ_ONLY_ROLES:
        ensure_role(admin_url, role)
    ensure_database(admin_url, database_name(url), owner)
    _run_sql_file(url, "schema.sql")
    _run_sql_file(url, "grants.sql")


def init_all(settings: Settings | None = None, extra_databases: Iterable[str] = ()) -> None:
    """Bootstrap the data database plus the service databases (airflow, mlflow)."""
    settings = settings or get_settings()
    init_database(settings.database_url, settings.admin_url)
    owner = urlsplit(settings.database_url).username or "marketflow"
    for name in extra_databases:
        ensure_database(settings.admin_url, name, owner)
    log.info("database %s ready", database_name(settings.database_url))


__all__ = [
    "connect",
    "drop_database",
    "ensure_database",
    "ensure_role",
    "init_all",
    "init_database",
    "with_database",
]
