"""api/db.py and the read-only role, against a real PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date

import psycopg2
import psycopg2.errors
import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.urls import database_name
from tests.api.api_test_helpers import signal_row

API_CONNECTIONS_SQL = """
select pid from pg_stat_activity
where datname = %s and application_name = 'marketflow-api'
"""


def api_backends(admin_url: str, database_url: str) -> list[int]:
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute(API_CONNECTIONS_SQL, (database_name(database_url),))
        pids = [row[0] for row in cur.fetchall()]
    conn.close()
    return pids


@pytest.mark.parametrize(
    "statement",
    [
        "insert into signals.daily_signals values "
        "('2024-03-08', 'AAPL', 1.0, 1, 'long', 'm', '1', 'run', now())",
        "update signals.daily_signals set score = 0",
        "delete from signals.daily_signals",
        "truncate signals.daily_signals",
        "create table signals.sneaky (id int)",
    ],
)
def test_the_api_role_cannot_write(api_database_url: str, statement: str) -> None:
    conn = psycopg2.connect(api_database_url)
    try:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def test_the_api_role_can_read(api_database_url: str) -> None:
    conn = psycopg2.connect(api_database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("select current_user, count(*) from signals.daily_signals")
            user, _ = cur.fetchone()
    finally:
        conn.close()
    assert user == "marketflow_api"


def test_requests_share_one_pooled_connection(
    client: FlaskClient, admin_url: str, api_database_url: str
) -> None:
    for _ in range(3):
        assert client.get("/api/v1/health").status_code == 200
    assert len(api_backends(admin_url, api_database_url)) == 1


def test_a_pooled_connection_killed_by_the_server_is_replaced(
    client: FlaskClient,
    admin_url: str,
    api_database_url: str,
    add_signals: Callable[[list[dict]], None],
) -> None:
    add_signals([signal_row(date(2024, 3, 8), "AAPL", 1)])
    assert client.get("/api/v1/signals/latest").status_code == 200
    (old_pid,) = api_backends(admin_url, api_database_url)

    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute("select pg_terminate_backend(%s, 5000)", (old_pid,))
    conn.close()

    response = client.get("/api/v1/signals/latest")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["count"] == 1
    assert api_backends(admin_url, api_database_url) not in ([], [old_pid])


def test_the_connection_is_read_only_even_for_a_writing_role(
    make_app: Callable[..., Flask], api_owner_url: str
) -> None:
    app = make_app(api_owner_url)  # the owner may write; the API's session still may not
    with app.app_context():
        from api.db import fetch_all

        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            fetch_all("delete from signals.daily_signals returning symbol")


def test_the_api_does_not_import_heavy_libraries(api_database_url: str, api_key: str) -> None:
    # A fresh interpreter: this test process may have imported them for other tests.
    script = f"""
import json, sys
from api import create_app
client = create_app({{"DATABASE_URL": {api_database_url!r}}}).test_client()
client.environ_base["HTTP_AUTHORIZATION"] = "Bearer {api_key}"
paths = ("/api/v1/health", "/api/v1/signals/latest", "/api/v1/openapi.json", "/api/v1/docs")
statuses = [client.get(p).status_code for p in paths]
heavy = ("torch", "mlflow", "pandas", "numpy", "airflow", "ml", "sklearn", "xgboost")
print(json.dumps({{"statuses": statuses, "loaded": [m for m in heavy if m in sys.modules]}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["statuses"][0] == 200
    assert result["statuses"][1] in (200, 404)
    assert result["statuses"][2:] == [200, 200]
    assert result["loaded"] == []
