"""The dbt docs site (the analysts' column catalogue) served by the running stack: the
features DAG's `docs_generate` publishes it to $MARKETFLOW_DATA_DIR/dbt-docs, and the Airflow
api-server of `marketflow up` serves it through Cosmos's plugin, no checkout needed."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from core.dbt import docs_generate
from core.settings import get_settings
from core.urls import database_name
from marketflow.services import DBT_DOCS_PATH, start_all
from tests.api.api_test_helpers import free_port
from tests.helpers import CHROMIUM, chromium, own_airflow

pytestmark = pytest.mark.e2e


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def test_the_airflow_api_server_serves_the_published_dbt_docs(
    market_url: str, admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    airflow_db = database_name(market_url) + "_docs_airflow"
    monkeypatch.setenv("MARKETFLOW_DATABASE_URL", market_url)
    monkeypatch.setenv("MARKETFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MARKETFLOW_AIRFLOW_PORT", str(port))
    monkeypatch.setenv("MARKETFLOW_AIRFLOW_DATABASE", airflow_db)
    settings = get_settings()
    index = docs_generate(market_url)
    assert index == tmp_path / "data" / "dbt-docs" / "index.html" and index.is_file()

    with own_airflow(settings, admin_url, lambda name: name == "airflow-api-server") as (
        _env,
        _url,
        stack,
    ):
        start_all(settings, echo=lambda _: None, stack=stack)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while _get(base + DBT_DOCS_PATH)[0] != 200 and time.monotonic() < deadline:
            time.sleep(1)
        status, page = _get(base + DBT_DOCS_PATH)
        _, catalog = _get(base + "/cosmos/marketflow/catalog.json")
        _, manifest = _get(base + "/cosmos/marketflow/manifest.json")
        if CHROMIUM.exists():
            _browse_the_catalogue(base, tmp_path / "chromium-profile")

    assert status == 200, page[:500]
    assert b"<html" in page.lower() and b"dbt" in page.lower()
    # The catalogue the page renders: the marts' columns from the database, their meaning
    # from the project.
    columns = json.loads(catalog)["nodes"]["model.marketflow.features_daily"]["columns"]
    assert "rsi_14" in columns and len(columns) == 145
    described = json.loads(manifest)["nodes"]["model.marketflow.features_daily"]["columns"]
    assert described["rsi_14"]["description"].strip()


def _browse_the_catalogue(base: str, profile: Path) -> None:
    """The site as an analyst sees it in a browser: the project tree, then the features mart's
    page with its columns and their descriptions, nothing fetched from elsewhere."""
    elsewhere: list[str] = []
    with chromium(profile) as browser:
        page = browser.new_page()
        page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:")
                else elsewhere.append(r.url))  # fmt: skip
        response = page.goto(base + DBT_DOCS_PATH + "#!/model/model.marketflow.features_daily")
        assert response is not None and response.status == 200
        page.get_by_text("features_daily", exact=True).first.wait_for(timeout=30_000)
        page.get_by_text("rsi_14", exact=True).first.wait_for(timeout=30_000)
        text = page.locator("body").inner_text()
        page.close()
    assert "Columns" in text and "rsi_14" in text
    assert "Relative strength index over the last 14 daily moves" in text, text[:2000]
    assert elsewhere == [], elsewhere
