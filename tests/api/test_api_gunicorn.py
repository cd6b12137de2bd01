"""The real app under gunicorn, configured by api/gunicorn.conf.py and the environment."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import date
from pathlib import Path

from tests.api.api_test_helpers import get_json, gunicorn, signal_row


def test_gunicorn_serves_the_latest_signals(
    tmp_path: Path,
    unused_port: int,
    api_database_url: str,
    add_signals: Callable[[list[dict]], None],
    api_key: str,
) -> None:
    add_signals(
        [
            signal_row(date(2024, 3, 7), "AAPL", 1),
            signal_row(date(2024, 3, 8), "NVDA", 2, signal="long"),
            signal_row(date(2024, 3, 8), "AAPL", 1, signal="long"),
        ]
    )
    base = f"http://127.0.0.1:{unused_port}"
    log = tmp_path / "gunicorn.log"
    pidfile = tmp_path / "gunicorn.pid"
    env = {
        **os.environ,
        "MARKETFLOW_API_BIND": f"127.0.0.1:{unused_port}",
        "MARKETFLOW_API_DATABASE_URL": api_database_url,
        "MARKETFLOW_API_PIDFILE": str(pidfile),
    }
    with gunicorn(env, log) as server:
        assert int(pidfile.read_text()) == server.pid

        status, body = get_json(f"{base}/api/v1/signals/latest")
        assert status == 401 and body["error"] == "unauthorized"

        status, body = get_json(f"{base}/api/v1/signals/latest", api_key)
        assert status == 200
        assert body["trade_date"] == "2024-03-08"
        assert body["count"] == 2
        assert [(s["symbol"], s["rank"]) for s in body["signals"]] == [("AAPL", 1), ("NVDA", 2)]

        status, body = get_json(f"{base}/api/v1/signals/latest?limit=abc", api_key)
        assert status == 400 and body["error"] == "bad_request"

        # The docs page and its Swagger UI script come from the app itself (no CDN).
        with urllib.request.urlopen(f"{base}/api/v1/docs", timeout=5) as response:
            assert response.status == 200
            assert "/api/v1/docs/static/swagger-ui-bundle.js" in response.read().decode()
        script = f"{base}/api/v1/docs/static/swagger-ui-bundle.js"
        with urllib.request.urlopen(script, timeout=5) as response:
            assert response.status == 200 and b"SwaggerUIBundle" in response.read()
    assert server.returncode == 0, log.read_text()
    output = log.read_text()
    assert '"GET /api/v1/signals/latest HTTP/1.1" 200' in output  # access log on stdout
    assert not pidfile.exists()
    assert "Control socket" not in output  # off unless MARKETFLOW_API_CONTROL_SOCKET is set
