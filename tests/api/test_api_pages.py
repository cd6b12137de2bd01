"""What a person sees: `/`, the drift report it links to, and the interactive docs (Swagger
UI), served by gunicorn, driven by a real headless Chromium (Debian's package). The dbt docs
site's browser check is in tests/dags/test_dbt_docs_served.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.api_test_helpers import free_port, seed_demo
from tests.api.test_api_gunicorn import gunicorn
from tests.helpers import chromium, needs_chromium

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def served(
    api_owner_url: str,
    api_database_url: str,
    api_key: str,
    mlflow_store: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("pages")
    model_name = f"page_model_{uuid.uuid4().hex[:8]}"
    seeded = seed_demo(
        api_owner_url, mlflow_store["MLFLOW_TRACKING_URI"], tmp / "artifacts", model_name,
        reports_dir=tmp / "data" / "reports",
    )  # fmt: skip
    port = free_port()
    env = {
        **os.environ,
        "MARKETFLOW_API_BIND": f"127.0.0.1:{port}",
        "MARKETFLOW_API_DATABASE_URL": api_database_url,
        "MARKETFLOW_API_WORKERS": "1",
        "MLFLOW_TRACKING_URI": mlflow_store["MLFLOW_TRACKING_URI"],
        "MARKETFLOW_MODEL_NAME": model_name,
        "MARKETFLOW_DATA_DIR": str(tmp / "data"),
        "MARKETFLOW_API_PUBLIC_PAGE": "true",
        "MARKETFLOW_API_LINK_SECRET": "pages-test-link-secret",
    }
    with gunicorn(env, tmp / "gunicorn.log"):
        yield {
            "base": f"http://127.0.0.1:{port}",
            "key": api_key,
            "model_name": model_name,
            **seeded,
        }


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def test_home_page_shows_signals_champion_and_drift(served: dict, browser: Any) -> None:
    page = browser.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    response = page.goto(served["base"] + "/")
    assert response is not None and response.status == 200
    assert page.title() == "MarketFlow signals"

    signals = page.locator("#signals")
    assert page.locator("#trade-date").inner_text() == served["days"][-1].isoformat()
    rows = signals.locator("tbody tr")
    assert rows.count() == len(served["symbols"])
    first = rows.nth(0).locator("td").all_inner_texts()
    assert first[:3] == ["1", "S000", "long"]
    assert "short" in rows.nth(rows.count() - 1).inner_text()

    champion = page.locator("#champion")
    text = champion.inner_text()
    assert f"{served['model_name']} v{served['version']}" in text
    assert "ridge" in text and "2020-01-01" in text and "2023-12-29" in text
    assert "0.0420" in text and "1.3000" in text  # metric.ic, metric.sharpe
    image = page.locator("#equity-curve")
    image.wait_for()
    assert page.evaluate("document.getElementById('equity-curve').naturalWidth") == 120
    with page.expect_navigation():
        page.locator("#tear-sheet").click()
    assert page.locator("#sheet").inner_text() == "ridge"  # the champion's tear sheet
    page.go_back()

    drift = page.locator("#drift").inner_text()
    assert "Drift detected" in drift and "1 of 2 features drifted (50%)" in drift
    assert "IC 0.0310" in drift and "hit rate 0.5400" in drift

    # The drift report opens from the page through its signed link (no key in a browser):
    # our summary first, then Evidently's own widgets, drawn by its inline scripts.
    with page.expect_navigation():
        page.locator("#drift-report").click()
    assert f"/api/v1/drift/{served['drift_run_id']}/report?token=" in page.url
    summary = page.locator("#marketflow-drift-summary")
    assert "of 2 features drifted" in summary.locator("h2").inner_text()
    page.get_by_text("All features").click()
    assert summary.locator("tr").count() == 3  # the header and one row per feature
    page.get_by_text("Data Drift Summary", exact=False).first.wait_for(timeout=20_000)
    assert page.get_by_text("ret_1d").count() >= 2  # in our table and in Evidently's
    assert failed == []  # nothing fetched from elsewhere, nothing broken
    page.close()


def swagger_operation(page: Any, method: str, path: str) -> Any:
    """An operation of the Swagger UI page, opened and switched to "Try it out"."""
    operation = page.locator(
        f".opblock-{method}", has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )
    operation.locator(".opblock-summary").first.click()
    operation.locator("button.try-out__btn").click()
    return operation


def execute(operation: Any, status: str, timeout_ms: int = 10_000) -> str:
    """Click Execute; waits for the answer with `status`, returns its body."""
    from playwright.sync_api import expect

    operation.locator("button.execute").click()
    answer = operation.locator(".live-responses-table .response").first
    expect(answer.locator(".response-col_status")).to_have_text(status, timeout=timeout_ms)
    return str(answer.locator(".response-col_description pre").first.inner_text())


def test_docs_page_renders_the_openapi_document_and_sends_requests(
    served: dict, browser: Any
) -> None:
    page = browser.new_page()
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith(served["base"]) else elsewhere.append(request.url)
        ),
    )
    response = page.goto(served["base"] + "/api/v1/docs")
    assert response is not None and response.status == 200
    page.locator(".opblock").first.wait_for()
    paths = page.locator(".opblock-summary-path").evaluate_all(
        "els => els.map(el => el.dataset.path)"
    )
    assert "/api/v1/signals/latest" in paths and "/api/v1/score" in paths

    latest = swagger_operation(page, "get", "/api/v1/signals/latest")
    latest.locator('tr[data-param-name="limit"] input').fill("2")
    assert '"unauthorized"' in execute(latest, "401")  # no key yet

    page.locator(".scheme-container button.authorize").click()
    page.locator(".modal-ux input").first.fill(served["key"])
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    assert '"count": 2' in execute(latest, "200")

    score = swagger_operation(page, "post", "/api/v1/score")
    score.locator("textarea.body-param__text").fill('{"symbols": ["S001", "S002"]}')
    assert '"symbol": "S001"' in execute(score, "200", timeout_ms=60_000)
    assert elsewhere == []  # Swagger UI's JS and CSS come from the app: it works offline
    page.close()


def test_the_drift_report_is_served(served: dict) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{served['base']}/api/v1/drift/{served['drift_run_id']}/report",
        headers={"Authorization": f"Bearer {served['key']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert b'id="marketflow-drift-summary"' in response.read()
