"""Keys (missing, wrong, revoked), the new signal filters and routes, HTTP caching, and a
database that goes down and comes back (through a TCP proxy the test controls)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.keys import create_key, hash_key, list_keys, revoke_key
from marketflow.cli import main as cli_main
from tests.api.api_test_helpers import keyed_client, signal_row
from tests.api.tcp_proxy import TcpProxy

AddSignals = Callable[[list[dict]], None]
DAY = date(2024, 3, 8)
PROTECTED = [
    ("get", "/api/v1/signals/latest"),
    ("get", "/api/v1/signals/AAPL"),
    ("get", "/api/v1/models/champion"),
    ("get", "/api/v1/drift/latest"),
    ("post", "/api/v1/score"),
]


@pytest.fixture
def history(add_signals: AddSignals) -> None:
    rows = []
    for offset in range(5):
        day = DAY - timedelta(days=4 - offset)
        rows += [
            signal_row(day, "AAPL", 1, signal="long"),
            signal_row(day, "MSFT", 2, signal="neutral"),
            signal_row(day, "TSLA", 3, signal="short"),
        ]
    add_signals(rows)


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer ", "Basic abc", "Bearer wrong-key", "Token mf_x"]
)
def test_protected_routes_are_401_without_a_valid_key(
    app: Flask, method: str, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = getattr(app.test_client(), method)(path, headers=headers)
    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/openapi.json", "/api/v1/docs", "/"])
def test_open_routes_need_no_key(app: Flask, path: str) -> None:
    app.config["PUBLIC_PAGE"] = True  # the page is open where a deployment turns it on
    assert app.test_client().get(path).status_code == 200


def test_keys_are_stored_hashed_and_revocation_takes_effect(
    app: Flask, api_owner_url: str, history: None
) -> None:
    key, token = create_key(api_owner_url, "revocable")
    assert token.startswith("mf_") and len(token) > 40
    with psycopg2.connect(api_owner_url) as conn, conn.cursor() as cur:
        cur.execute(
            "select key_hash, key_prefix from api.api_keys where key_id = %s", (key.key_id,)
        )
        stored_hash, prefix = cur.fetchone()
    conn.close()
    assert stored_hash == hash_key(token) and token not in stored_hash
    assert token.startswith(prefix) and len(prefix) < 12

    client = keyed_client(app, token)
    assert client.get("/api/v1/signals/latest").status_code == 200
    assert revoke_key(api_owner_url, "revocable") == 1
    assert client.get("/api/v1/signals/latest").status_code == 401
    assert revoke_key(api_owner_url, "revocable") == 0
    # A new key may take the name again.
    _, again = create_key(api_owner_url, "revocable")
    assert keyed_client(app, again).get("/api/v1/signals/latest").status_code == 200


def test_a_cached_key_is_dropped_within_the_cache_time(
    make_app: Callable[..., Flask], api_database_url: str, api_owner_url: str, history: None
) -> None:
    app = make_app(api_database_url, KEY_CACHE_SECONDS=0.5)
    _, token = create_key(api_owner_url, "cached")
    client = keyed_client(app, token)
    assert client.get("/api/v1/signals/latest").status_code == 200
    revoke_key(api_owner_url, "cached")
    time.sleep(0.6)
    assert client.get("/api/v1/signals/latest").status_code == 401


def test_cli_creates_lists_and_revokes_keys(
    api_owner_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MARKETFLOW_DATABASE_URL", api_owner_url)
    assert cli_main(["api-key", "create", "--name", "cli-app"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("mf_")
    assert cli_main(["api-key", "create", "--name", "cli-app"]) == 1  # one active key per name
    assert "revoke it first" in capsys.readouterr().err
    assert cli_main(["api-key", "list"]) == 0
    listing = capsys.readouterr().out
    assert "cli-app" in listing and token not in listing
    assert cli_main(["api-key", "revoke", "--name", "cli-app"]) == 0
    assert cli_main(["api-key", "revoke", "--name", "cli-app"]) == 1
    keys = [k for k in list_keys(api_owner_url) if k.name == "cli-app"]
    assert len(keys) == 1 and keys[0].revoked_at is not None


def test_the_api_role_cannot_write_keys_nor_read_their_hashes(
    api_database_url: str, api_key: str
) -> None:
    from api.keys import hash_key

    conn = psycopg2.connect(api_database_url)
    conn.autocommit = True
    try:
        for statement in ("update api.api_keys set revoked_at = null",
                          "select key_hash from api.api_keys"):  # fmt: skip
            with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn.cursor() as cur:
                cur.execute(statement)
        # It can only ask whether one hash is an active key.
        with conn.cursor() as cur:
            cur.execute("select api.active_key_id(%s), api.active_key_id(%s)",
                        (hash_key(api_key), hash_key("not-a-key")))  # fmt: skip
            found, missing = cur.fetchone()
        assert isinstance(found, int) and missing is None
    finally:
        conn.close()


# --- filters and routes -----------------------------------------------------------------------


@pytest.mark.usefixtures("history")
def test_latest_filtered_by_symbols_and_side(client: FlaskClient) -> None:
    body = client.get("/api/v1/signals/latest?symbols=TSLA,AAPL,NOPE").get_json()
    assert [s["symbol"] for s in body["signals"]] == ["AAPL", "TSLA"]
    assert body["unknown_symbols"] == ["NOPE"]
    body = client.get("/api/v1/signals/latest?side=short").get_json()
    assert [s["symbol"] for s in body["signals"]] == ["TSLA"]
    body = client.get("/api/v1/signals/latest?symbols=AAPL,MSFT&side=neutral").get_json()
    assert [s["symbol"] for s in body["signals"]] == ["MSFT"]


@pytest.mark.parametrize(
    "query",
    [
        "symbols=",
        "symbols=AAPL,,MSFT",
        "symbols=AA%20PL",
        "symbols=" + ",".join(f"S{i}" for i in range(501)),
        "symbols=" + "A" * 21,
        "side=up",
        "side=long&signal=short",
    ],
)
def test_latest_rejects_bad_filters(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/signals/latest?{query}")
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"


@pytest.mark.usefixtures("history")
def test_symbol_history_is_newest_first_and_paginated(client: FlaskClient) -> None:
    body = client.get("/api/v1/signals/AAPL?page_size=2").get_json()
    assert body["total"] == 5 and body["has_more"] is True
    assert [s["trade_date"] for s in body["signals"]] == ["2024-03-08", "2024-03-07"]
    body = client.get("/api/v1/signals/AAPL?page_size=2&page=3").get_json()
    assert [s["trade_date"] for s in body["signals"]] == ["2024-03-04"]
    assert body["has_more"] is False
    body = client.get("/api/v1/signals/AAPL?page_size=2&page=9").get_json()
    assert body["signals"] == [] and body["total"] == 5
    body = client.get("/api/v1/signals/AAPL?start=2024-03-05&end=2024-03-06").get_json()
    assert [s["trade_date"] for s in body["signals"]] == ["2024-03-06", "2024-03-05"]
    assert body["total"] == 2
    body = client.get("/api/v1/signals/AAPL?start=2024-03-08&end=2024-03-01").get_json()
    assert body["signals"] == [] and body["total"] == 0


@pytest.mark.usefixtures("history")
def test_symbols_are_accepted_in_any_case(client: FlaskClient) -> None:
    upper = client.get("/api/v1/signals/AAPL").get_json()
    for path in ("/api/v1/signals/aapl", "/api/v1/signals/Aapl"):
        response = client.get(path)
        assert response.status_code == 200 and response.get_json() == upper, path
    latest = client.get("/api/v1/signals/latest?symbols=aapl").get_json()
    assert [s["symbol"] for s in latest["signals"]] == ["AAPL"]


@pytest.mark.usefixtures("history")
def test_an_unknown_symbol_is_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/signals/NOPE")
    assert response.status_code == 404 and "NOPE" in response.get_json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/signals/AAPL?start=2024-02-30",
        "/api/v1/signals/AAPL?start=yesterday",
        "/api/v1/signals/AAPL?end=2024-3-1",
        "/api/v1/signals/AAPL?page=0",
        "/api/v1/signals/AAPL?page_size=1001",
        "/api/v1/signals/AAPL?page=x",
        "/api/v1/signals/$$$",
        "/api/v1/drift/not-a-uuid/report",
        "/api/v1/drift/latest?model=",
    ],
)
def test_bad_route_parameters_are_400(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"


# --- HTTP caching -----------------------------------------------------------------------------


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize("path", ["/api/v1/signals/latest?limit=2", "/api/v1/signals/AAPL"])
def test_etag_and_last_modified_give_304(client: FlaskClient, path: str) -> None:
    first = client.get(path)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag.startswith('"') and modified.endswith("GMT")

    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    earlier = "Mon, 01 Jan 2024 00:00:00 GMT"
    assert client.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    # Other parameters, another representation.
    assert (
        client.get(path + "&side=long" if "?" in path else path + "?page=2").headers["ETag"] != etag
    )


@pytest.mark.usefixtures("history")
def test_gzip_for_clients_that_accept_it(client: FlaskClient) -> None:
    import gzip
    import json

    plain = client.get("/api/v1/signals/latest")
    assert "Content-Encoding" not in plain.headers
    packed = client.get("/api/v1/signals/latest", headers={"Accept-Encoding": "gzip, deflate"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding"
    assert json.loads(gzip.decompress(packed.data)) == plain.get_json()
    assert packed.headers["ETag"] != plain.headers["ETag"]
    again = client.get(
        "/api/v1/signals/latest",
        headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["ETag"]},
    )
    assert again.status_code == 304
    refused = client.get("/api/v1/signals/latest", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers


def test_new_signals_change_the_etag(client: FlaskClient, add_signals: AddSignals) -> None:
    add_signals([signal_row(DAY, "AAPL", 1, created_at=datetime(2024, 3, 8, 18, 0))])
    etag = client.get("/api/v1/signals/latest").headers["ETag"]
    add_signals([signal_row(DAY + timedelta(days=1), "AAPL", 1,
                            created_at=datetime(2024, 3, 9, 18, 0))])  # fmt: skip
    response = client.get("/api/v1/signals/latest", headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.get_json()["trade_date"] == "2024-03-09"
    assert response.headers["Last-Modified"] == "Sat, 09 Mar 2024 18:00:00 GMT"


def test_the_latest_stamp_is_trusted_for_the_cache_time_only(
    make_app: Callable[..., Flask], api_database_url: str, api_key: str, add_signals: AddSignals
) -> None:
    app = make_app(api_database_url, SIGNALS_CACHE_SECONDS=0.5)
    client = keyed_client(app, api_key)
    add_signals([signal_row(DAY, "AAPL", 1, created_at=datetime(2024, 3, 8, 18, 0, tzinfo=UTC))])
    assert client.get("/api/v1/signals/latest").get_json()["trade_date"] == "2024-03-08"
    add_signals([signal_row(DAY + timedelta(days=1), "MSFT", 1)])
    time.sleep(0.6)
    assert client.get("/api/v1/signals/latest").get_json()["trade_date"] == "2024-03-09"


# --- the database going down ------------------------------------------------------------------


@pytest.fixture
def proxy(api_database_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(api_database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    yield proxy
    proxy.stop()


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}@127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def test_database_down_is_503_json_and_the_api_recovers(
    make_app: Callable[..., Flask],
    api_database_url: str,
    api_key: str,
    proxy: TcpProxy,
    history: None,
) -> None:
    app = make_app(through(api_database_url, proxy.port), DATABASE_CONNECT_TIMEOUT=2)
    client = keyed_client(app, api_key)
    assert client.get("/api/v1/signals/latest").status_code == 200  # a pooled connection now

    proxy.stop()
    for path in ("/api/v1/signals/latest", "/api/v1/signals/AAPL", "/api/v1/health"):
        response = client.get(path)
        assert response.status_code == 503, (path, response.get_json())
        assert response.get_json() == {
            "error": "service_unavailable",
            "detail": "database unreachable",
        }

    proxy.start()
    response = client.get("/api/v1/signals/latest")
    assert response.status_code == 200
    assert response.get_json()["count"] == 3
    assert client.get("/api/v1/health").get_json() == {"status": "ok", "database": "ok"}
