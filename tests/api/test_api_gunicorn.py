"""The real app under gunicorn, configured by api/gunicorn.conf.py and the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from tests.api.api_test_helpers import signal_row

REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
STARTUP_TIMEOUT_S = 15


def get_json(url: str, key: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=5
        ) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for_health(base: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"gunicorn exited early:\n{log.read_text()}"
        try:
            if get_json(f"{base}/api/v1/health") == (200, {"status": "ok", "database": "ok"}):
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"no healthy answer within {STARTUP_TIMEOUT_S}s:\n{log.read_text()}")


@contextmanager
def gunicorn(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`gunicorn -c api/gunicorn.conf.py` under `env`, healthy on MARKETFLOW_API_BIND before
    the body runs; on the way out SIGTERM, then SIGKILL after 15 s (which fails the test)."""
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [str(GUNICORN), "-c", "api/gunicorn.conf.py"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_health(f"http://{env['MARKETFLOW_API_BIND']}", server, log)
            yield server
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                raise


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
