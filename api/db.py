"""PostgreSQL access for the API: one connection per request on `flask.g`.

Connections come from a small per-app pool of idle connections, opened lazily on the
first request, so a gunicorn worker opens its own after the fork. They are read-only and
autocommit: every query is its own snapshot, and nothing is left in a transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg2
import psycopg2.extras
from flask import Flask, current_app, g
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from psycopg2.extensions import connection as Connection

_POOL_KEY = "marketflow_api.db_pool"
_APPLICATION_NAME = "marketflow-api"

Params = Sequence[Any] | Mapping[str, Any] | None


class ConnectionPool:
    """Keeps up to `size` idle connections; opens more on demand, never blocks.

    psycopg2.pool keeps only `minconn` idle connections and raises once `maxconn` are in
    use, which fits neither gunicorn's sync workers nor its threaded ones.
    """

    def __init__(
        self, url: str, size: int, connect_timeout: int, statement_timeout_ms: int
    ) -> None:
        self.url = url
        self.size = size
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def acquire(self) -> Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
        return self._connect()

    def release(self, conn: Connection) -> None:
        if not conn.closed and conn.info.transaction_status == TRANSACTION_STATUS_IDLE:
            with self._lock:
                if len(self._idle) < self.size:
                    self._idle.append(conn)
                    return
        conn.close()

    def discard_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _connect(self) -> Connection:
        conn = psycopg2.connect(
            self.url,
            connect_timeout=self.connect_timeout,
            application_name=_APPLICATION_NAME,
            options=f"-c statement_timeout={self.statement_timeout_ms}",
        )
        conn.set_session(readonly=True, autocommit=True)
        return conn


_pool_lock = threading.Lock()


def _pool(app: Flask) -> ConnectionPool:
    pool = app.extensions.get(_POOL_KEY)
    if pool is None:
        with _pool_lock:
            pool = app.extensions.get(_POOL_KEY)
            if pool is None:
                pool = ConnectionPool(
                    app.config["DATABASE_URL"],
                    size=app.config["DATABASE_POOL_SIZE"],
                    connect_timeout=app.config["DATABASE_CONNECT_TIMEOUT"],
                    statement_timeout_ms=app.config["DATABASE_STATEMENT_TIMEOUT_MS"],
                )
                app.extensions[_POOL_KEY] = pool
    return pool


def get_db() -> Connection:
    """The request's connection, opened (or taken from the pool) on first use."""
    if "db_conn" not in g:
        g.db_conn = _pool(current_app).acquire()
    conn: Connection = g.db_conn
    return conn


def close_db(exc: BaseException | None = None) -> None:
    conn = g.pop("db_conn", None)
    if conn is not None:
        _pool(current_app).release(conn)


def fetch_all(query: str, params: Params = None) -> list[dict[str, Any]]:
    """Run a read-only query and return its rows as dicts.

    A pooled connection may have died since its last use (a database restart, an idle
    timeout); that shows up as a broken connection on the first query. The other idle
    connections died with it, so they are dropped and the query runs once more on a fresh
    connection. Reads are safe to repeat.
    """
    conn = get_db()
    try:
        return _run(conn, query, params)
    except psycopg2.OperationalError:
        if not conn.closed:
            raise
        g.pop("db_conn", None)
        _pool(current_app).discard_idle()
    return _run(get_db(), query, params)


def _run(conn: Connection, query: str, params: Params) -> list[dict[str, Any]]:
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(query, params)
        return [dict(row) for row in cur.fetchall()]


def close_pool(app: Flask) -> None:
    """Close the app's idle connections (tests, shutdown)."""
    pool = app.extensions.pop(_POOL_KEY, None)
    if pool is not None:
        pool.discard_idle()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
