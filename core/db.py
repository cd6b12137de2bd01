"""Database bootstrap: roles, databases and MarketFlow's own schemas, all idempotent.

`marketflow db init` runs this before anything else; tests run it against their own
databases. dbt owns `staging`, `intermediate` and `marts`; this module owns the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection
from psycopg2.extensions import cursor as PgCursor

from core.settings import Settings, get_settings
from core.urls import database_name, with_database

log = logging.getLogger(__name__)

READ_ONLY_ROLES = ("marketflow_analyst", "marketflow_api")


@contextmanager
def connect(url: str, *, autocommit: bool = False, **kwargs: Any) -> Iterator[PgConnection]:
    """One psycopg2 connection for one unit of work: committed when the block ends, rolled
    back when it raises, and always closed (psycopg2's own `with conn` commits but leaves the
    connection open). `kwargs` go to `psycopg2.connect` (e.g. `connect_timeout`)."""
    conn = psycopg2.connect(url, **kwargs)
    try:
        conn.autocommit = autocommit
        yield conn
        if not autocommit:
            conn.commit()
    except BaseException:
        if not conn.closed and not autocommit:
            conn.rollback()
        raise
    finally:
        conn.close()


def _role_exists(cur: PgCursor, role: str) -> bool:
    cur.execute("select 1 from pg_roles where rolname = %s", (role,))
    return cur.fetchone() is not None


def ensure_role(admin_url: str, role: str, login: bool = True) -> None:
    with connect(admin_url) as conn, conn.cursor() as cur:
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


def ensure_database(admin_url: str, database: str, owner: str) -> bool:
    """Create `database` owned by `owner` unless it exists. Returns True when created."""
    with connect(admin_url, autocommit=True) as conn, conn.cursor() as cur:
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


def drop_database(admin_url: str, database: str) -> None:
    with connect(admin_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database))
        )


def _run_sql_file(url: str, name: str) -> None:
    text = resources.files("core").joinpath("sql", name).read_text()
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(text)


def ensure_extensions(url: str, admin_url: str) -> None:
    """`dblink` in the schema `extensions` of the database at `url`, usable by its owner.

    dbt builds features_daily in parallel symbol slices over dblink connections
    (dbt/macros/build_in_slices.sql). Creating the extension takes a superuser. The owner may
    call dblink_connect_u: the plain dblink_connect refuses a non-superuser whose server asks
    no password (trust), and the slices connect as that same owner. Without the extension
    (a server with no contrib modules) the build runs in one slice.
    """
    owner = urlsplit(url).username or "marketflow"
    with connect(with_database(admin_url, database_name(url))) as conn, conn.cursor() as cur:
        cur.execute("select 1 from pg_available_extensions where name = 'dblink'")
        if cur.fetchone() is None:
            log.warning("dblink is not available: features_daily builds in one slice")
            return
        cur.execute("create schema if not exists extensions")
        cur.execute("create extension if not exists dblink schema extensions")
        cur.execute(
            sql.SQL(
                "grant usage on schema extensions to {owner};"
                " grant execute on function extensions.dblink_connect_u(text, text) to {owner}"
            ).format(owner=sql.Identifier(owner))
        )


def init_database(url: str, admin_url: str) -> None:
    """Roles, the database itself, its extensions, MarketFlow's schemas and the read-only
    grants."""
    owner = urlsplit(url).username or "marketflow"
    ensure_role(admin_url, owner)
    for role in READ_ONLY_ROLES:
        ensure_role(admin_url, role)
    ensure_database(admin_url, database_name(url), owner)
    ensure_extensions(url, admin_url)
    _run_sql_file(url, "schema.sql")
    _run_sql_file(url, "grants.sql")


def init_all(settings: Settings | None = None, extra_databases: Iterable[str] = ()) -> None:
    """Bootstrap the data database plus the service databases (airflow, mlflow)."""
    settings = settings or get_settings()
    init_database(settings.db.url, settings.db.admin_url)
    owner = urlsplit(settings.db.url).username or "marketflow"
    for name in extra_databases:
        ensure_database(settings.db.admin_url, name, owner)
    log.info("database %s ready", database_name(settings.db.url))


__all__ = [
    "connect",
    "drop_database",
    "ensure_database",
    "ensure_extensions",
    "ensure_role",
    "init_all",
    "init_database",
]
