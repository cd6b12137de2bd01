"""The API under gunicorn as the fault drills run it: one seeded signal, a key, two workers,
no caches (every request asks the database)."""

from __future__ import annotations

import os
from datetime import date

from api.keys import create_key
from tests.api.api_test_helpers import API_ROLE, as_role, free_port, insert_signals, signal_row


def drill_api(owner_url: str) -> tuple[str, int, dict[str, str]]:
    """(an API key, the port, gunicorn's environment) for the database at `owner_url`."""
    _, key = create_key(owner_url, "drill")
    insert_signals(owner_url, [signal_row(date(2024, 3, 8), "AAPL", 1, signal="long")])
    port = free_port()
    env = {
        **os.environ,
        "MARKETFLOW_API_BIND": f"127.0.0.1:{port}",
        "MARKETFLOW_API_DATABASE_URL": as_role(owner_url, API_ROLE),
        "MARKETFLOW_API_WORKERS": "2",
        "MARKETFLOW_API_KEY_CACHE_SECONDS": "0",
        "MARKETFLOW_API_SIGNALS_CACHE_SECONDS": "0",
    }
    return key, port, env
