"""Secrets of the local stack stay on disk, owner-only, and out of logs and the summary."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from core.settings import Settings
from marketflow.services import airflow_env, airflow_password_file
from marketflow.summary import render


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_admin_password_is_written_owner_only_and_airflow_never_prints_it(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    env = airflow_env(settings)
    passwords = airflow_password_file(settings)
    assert _mode(passwords) == 0o600
    assert _mode(Path(env["AIRFLOW_HOME"]) / "jwt_secret") == 0o600
    password = json.loads(passwords.read_text())["admin"]
    assert len(password) >= 16

    # Airflow's own auth manager, started on that home, uses the password and prints none.
    code = (
        "from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import "
        "SimpleAuthManager; SimpleAuthManager().init()"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert password not in done.stdout + done.stderr
    assert "Password for user" not in done.stdout + done.stderr
    assert json.loads(passwords.read_text()) == {"admin": password}
    assert _mode(passwords) == 0o600

    # A second call (every service and CLI call makes one) keeps the password.
    airflow_env(settings)
    assert json.loads(passwords.read_text()) == {"admin": password}

    info = {"raw_rows": 0, "symbols": 0, "first_date": None, "last_date": None}
    summary = render(info, settings, urls=True)
    assert password not in summary and f"password in {passwords}" in summary
