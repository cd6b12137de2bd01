"""Signed, expiring links to a drift report (api/links.py): what a browser can open without a
key, and everything it cannot."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg2
import pytest
from flask import Flask

from tests.api.api_test_helpers import keyed_client

SECRET = "test-link-secret-" + "x" * 16


@pytest.fixture
def drift_runs(api_owner_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two drift runs dated after anything else in the test database, each with its report
    in the reports folder; removed afterwards."""
    reports = tmp_path / "data" / "reports"
    reports.mkdir(parents=True)
    runs = {}
    for day, name in (("2099-01-02", "older"), ("2099-01-05", "latest")):
        run_id = str(uuid.uuid4())
        path = reports / f"drift_{name}.html"
        path.write_text(f"<html><body><h1>Drift report {name}</h1></body></html>")
        runs[name] = run_id
        with psycopg2.connect(api_owner_url) as conn, conn.cursor() as cur:
            cur.execute(
                """insert into monitoring.drift_runs (run_id, run_date, reference_start,
                reference_end, current_start, current_end, n_features, n_drifted_features,
                share_drifted, drift_detected, report_path) values (%s, %s, '2098-01-02',
                '2098-12-29', %s, %s, 2, 0, 0, false, %s)""",
                (run_id, day, day, day, str(path)),
            )
        conn.close()
    yield {"data_dir": tmp_path / "data", **runs}
    with psycopg2.connect(api_owner_url) as conn, conn.cursor() as cur:
        cur.execute("delete from monitoring.drift_runs where run_id = any(%s::uuid[])",
                    (list(runs.values()),))  # fmt: skip
    conn.close()


def _app(make_app: Callable[..., Flask], url: str, data_dir: Path, **config: Any) -> Flask:
    return make_app(url, DATA_DIR=str(data_dir), **config)


def _link(client: Any) -> dict[str, Any]:
    answer = client.get("/api/v1/drift/latest")
    assert answer.status_code == 200, answer.get_json()
    drift: dict[str, Any] = answer.get_json()["drift"]
    return drift


def test_a_signed_link_opens_its_report_in_a_browser_without_a_key(
    make_app: Callable[..., Flask], api_database_url: str, api_key: str, drift_runs: dict
) -> None:
    app = _app(make_app, api_database_url, drift_runs["data_dir"], LINK_SECRET=SECRET)
    drift = _link(keyed_client(app, api_key))
    assert drift["run_id"] == drift_runs["latest"]
    assert drift["report_url"] == f"/api/v1/drift/{drift_runs['latest']}/report"
    link = drift["report_link"]
    assert link.startswith(drift["report_url"] + "?token=")
    expires = drift["report_link_expires_at"]
    assert expires.endswith("+00:00")

    browser = app.test_client()  # no Authorization header, as a browser opens a link
    opened = browser.get(link)
    assert opened.status_code == 200 and opened.mimetype == "text/html"
    assert b"Drift report latest" in opened.data
    # Without the token the same URL still needs a key.
    bare = browser.get(drift["report_url"])
    assert bare.status_code == 401 and bare.is_json


def test_a_link_opens_nothing_else(
    make_app: Callable[..., Flask], api_database_url: str, api_key: str, drift_runs: dict
) -> None:
    app = _app(make_app, api_database_url, drift_runs["data_dir"], LINK_SECRET=SECRET)
    link = _link(keyed_client(app, api_key))["report_link"]
    token = parse_qs(urlsplit(link).query)["token"][0]
    browser = app.test_client()

    other_run = browser.get(f"/api/v1/drift/{drift_runs['older']}/report?token={token}")
    assert other_run.status_code == 401
    assert "another drift run" in other_run.get_json()["detail"]
    other_route = browser.get(f"/api/v1/signals/latest?token={token}")
    assert other_route.status_code == 401
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    forged = browser.get(f"/api/v1/drift/{drift_runs['latest']}/report?token={altered}")
    assert forged.status_code == 401 and forged.get_json()["detail"] == "invalid report link"

    # Another deployment's secret signs nothing here.
    elsewhere = _app(make_app, api_database_url, drift_runs["data_dir"], LINK_SECRET="other" * 8)
    assert elsewhere.test_client().get(link).status_code == 401


def test_a_link_expires(
    make_app: Callable[..., Flask], api_database_url: str, api_key: str, drift_runs: dict
) -> None:
    app = _app(make_app, api_database_url, drift_runs["data_dir"], LINK_SECRET=SECRET,
               LINK_SECONDS=1)  # fmt: skip
    link = _link(keyed_client(app, api_key))["report_link"]
    browser = app.test_client()
    assert browser.get(link).status_code == 200
    time.sleep(2.2)  # itsdangerous stamps whole seconds: older than 1 s for sure
    expired = browser.get(link)
    assert expired.status_code == 401 and "expired" in expired.get_json()["detail"]


def test_without_a_secret_there_are_no_links_and_tokens_open_nothing(
    make_app: Callable[..., Flask], api_database_url: str, api_key: str, drift_runs: dict
) -> None:
    signer = _app(make_app, api_database_url, drift_runs["data_dir"], LINK_SECRET=SECRET)
    link = _link(keyed_client(signer, api_key))["report_link"]
    app = _app(make_app, api_database_url, drift_runs["data_dir"], LINK_SECRET=None)
    drift = _link(keyed_client(app, api_key))
    assert drift["report_link"] is None and drift["report_link_expires_at"] is None
    refused = app.test_client().get(link)
    assert refused.status_code == 401 and "send an API key" in refused.get_json()["detail"]
    # The key still opens it.
    assert keyed_client(app, api_key).get(drift["report_url"]).status_code == 200
