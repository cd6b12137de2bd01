"""PostgreSQL access for the API: one connection per request on `flask.g`.

Connections come from a small per-app pool of idle connections, opened lazily on the
first request, so a gunicorn worker opens its own after the fork. They are read-only and
autocommit: every query is its own snapshot, and nothing is left in a transaction.

They are psycopg2's asynchronous connections, waited on here with a deadline: libpq's
blocking calls wait for an answer forever, so a database that accepts connections and then
answers nothing (a stopped server, a lost network) would pin a gunicorn worker until its
30 s timeout kills it. With a deadline the request gets a 503 JSON within `read_timeout`
seconds, the stalled connection is closed and the worker serves the next request. The
server-side `statement_timeout` stays shorter, so a merely slow query is cancelled by the
server first and the connection is kept. After a timeout the worker does not ask again for
`STALL_BACKOFF_S` seconds (503 at once): with sync workers, requests queued behind the one
that waited would otherwise each wait their own deadline.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg2
import psycopg2.extras
from flask import Flask, current_app, g
from psycopg2.extensions import POLL_OK, POLL_READ, POLL_WRITE, TRANSACTION_STATUS_IDLE
from psycopg2.extensions import connection as Connection

_POOL_KEY = "marketflow_api.db_pool"
_APPLICATION_NAME = "marketflow-api"

Params = Sequence[Any] | Mapping[str, Any] | None


STALL_BACKOFF_S = 5.0


class DatabaseTimeout(psycopg2.OperationalError):
    """The database did not answer within the client's deadline (the connection is closed),
    or did not a moment ago (nothing was asked)."""


def wait(conn: Connection, timeout: float) -> None:
    """Drive an asynchronous connection until its operation completes, at most `timeout`
    seconds; past that the connection is closed and DatabaseTimeout raised."""
    deadline = time.monotonic() + timeout
    while True:
        state = conn.poll()
        if state == POLL_OK:
            return
        remaining = deadline - time.monotonic()
        ready: list[Any] = []
        if remaining > 0:
            fd = [conn.fileno()]
            if state == POLL_READ:
                ready, _, _ = select.select(fd, [], [], remaining)
            elif state == POLL_WRITE:
                _, ready, _ = select.select([], fd, [], remaining)
            else:  # pragma: no cover - psycopg2 documents no other state
                raise psycopg2.OperationalError(f"unexpected poll state {state}")
        if not ready:
            conn.close()
            raise DatabaseTimeout(f"the database did not answer within {timeout:g} s")


class ConnectionPool:
    """Keeps up to `size` idle connections; opens more on demand, never blocks.

    psycopg2.pool keeps only `minconn` idle connections and raises once `maxconn` are in
    use, which fits neither gunicorn's sync workers nor its threaded ones.
    """

    def __init__(
        self,
        url: str,
        size: int,
        connect_timeout: float,
        statement_timeout_ms: int,
        read_timeout: float,
    ) -> None:
        self.url = url
        self.size = size
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self.read_timeout = read_timeout
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._stalled_until = 0.0

    def check_not_stalled(self) -> None:
        if time.monotonic() < self._stalled_until:
            raise DatabaseTimeout("the database did not answer a moment ago")

    def stalled(self) -> None:
        """A query or connection timed out: drop the idle connections (they wait on the same
        server) and answer the next requests without asking, for STALL_BACKOFF_S seconds."""
        self._stalled_until = time.monotonic() + STALL_BACKOFF_S
        self.discard_idle()

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
        # Asynchronous connections are always autocommit; read-only comes with the session.
        conn = psycopg2.connect(
            self.url,
            async_=True,
            application_name=_APPLICATION_NAME,
            options=(
                f"-c statement_timeout={self.statement_timeout_ms}"
                " -c default_transaction_read_only=on"
            ),
        )
        wait(conn, self.connect_timeout)
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
                    read_timeout=app.config["DATABASE_READ_TIMEOUT"],
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
    """Run a read-only query and return its rows as dicts (see fetch_rows)."""
    return [dict(row) for row in fetch_rows(query, params, psycopg2.extras.RealDictCursor)]


def fetch_rows(query: str, params: Params = None, cursor_factory: Any = None) -> list[Any]:
    """Run a read-only query and return its rows (tuples, or what `cursor_factory` makes).

    A pooled connection may have died since its last use (a database restart, an idle
    timeout); that shows up as a broken connection on the first query. The other idle
    connections died with it, so they are dropped and the query runs once more on a fresh
    connection. Reads are safe to repeat. A database that does not answer in time is not
    asked twice: the request fails at once (503).
    """
    pool = _pool(current_app)
    pool.check_not_stalled()
    try:
        return _query_once_more_if_broken(query, params, cursor_factory)
    except DatabaseTimeout:
        g.pop("db_conn", None)
        pool.stalled()
        raise


def _query_once_more_if_broken(query: str, params: Params, factory: Any) -> list[Any]:
    conn = get_db()
    try:
        return _run(conn, query, params, factory)
    except DatabaseTimeout:
        raise
    except psycopg2.OperationalError:
        if not conn.closed:
            raise
        g.pop("db_conn", None)
        _pool(current_app).discard_idle()
    return _run(get_db(), query, params, factory)


def _run(conn: Connection, query: str, params: Params, factory: Any) -> list[Any]:
    with conn.cursor(cursor_factory=factory) as cur:
        cur.execute(query, params)
        wait(conn, _pool(current_app).read_timeout)
        return cur.fetchall()


def close_pool(app: Flask) -> None:
    """Close the app's idle connections (tests, shutdown)."""
    pool = app.extensions.pop(_POOL_KEY, None)
    if pool is not None:
        pool.discard_idle()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
