"""The page in a real browser: Debian's headless Chromium, driven by Playwright.

Streamlit serves the page on loopback, talking to the live service; the browser fills
in the form, uploads a CSV, and screenshots go to test-artifacts/ui/ for people to look
at. Skipped where /usr/bin/chromium is absent (`apt-get install -y chromium`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from churn.record.schema import Customer
from tests.clients.ui.drive import sample_csv
from tests.conftest import ROOT, LiveService, free_port, stop, wait_for
from tests.factories import make_customer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
WAIT_MS = 30_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no /usr/bin/chromium: install Debian's with `apt-get install -y chromium`",
    ),
]


@pytest.fixture(scope="module")
def ui_url(live_service: LiveService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlit run churn/clients/ui/app.py` on a free loopback port, as `make run` starts it."""
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = {**os.environ, "CHURN_API_URL": live_service.url}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "streamlit"), "run", "churn/clients/ui/app.py",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--client.toolbarMode", "viewer", "--client.showErrorDetails", "none"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/_stcore/health", process, timeout=60)
        yield url
    finally:
        stop(process)


def test_xsrf_protection_is_on(ui_url: str) -> None:
    # An upload without the XSRF cookie and token is refused.
    refused = httpx.put(
        f"{ui_url}/_stcore/upload_file/session/file", files={"file": ("a.csv", b"x")}
    )
    assert refused.status_code == 403


def test_form_and_file_upload_in_chromium(ui_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    upload = tmp_path / "branch-paris.csv"
    upload.write_bytes(sample_csv(120))
    customer = make_customer(Geography="Germany", Age=52, IsActiveMember=0, Balance=98500.0)

    with chromium_page(ui_url) as page:
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text("Ready", exact=True)).to_be_visible()
        expect(sidebar.get_by_text("Model version", exact=True)).to_be_visible()
        page.get_by_role("spinbutton", name="Credit score").wait_for()
        shoot(page, "01-form.png")

        page.get_by_role("textbox", name="CustomerId").fill("C-2024-0042")
        # As an officer reads the form: by the schema's titles, not column names.
        titles = {n: p["title"] for n, p in Customer.model_json_schema()["properties"].items()}
        for name, value in customer.items():
            label = titles[name]
            if page.get_by_role("spinbutton", name=label, exact=True).count():
                page.get_by_role("spinbutton", name=label, exact=True).fill(str(value))
            else:
                page.get_by_role("combobox", name=label, exact=True).click()
                page.get_by_role("option", name=str(value), exact=False).first.click()
        page.get_by_role("button", name="Predict churn risk").click()
        expect(page.get_by_role("button", name="Predict churn risk")).to_be_enabled()
        expect(page.get_by_text("Churn probability", exact=True)).to_be_visible()
        expect(page.get_by_text("Customer C-2024-0042:")).to_be_visible()
        expect(page.get_by_text("What drives this customer's risk")).to_be_visible()
        shoot(page, "02-prediction.png")

        page.get_by_role("tab", name="A file of customers").click()
        page.locator("input[type=file]").set_input_files(upload)
        page.get_by_role("button", name="Score this file").click()
        expect(page.get_by_text("Results for branch-paris.csv")).to_be_visible()
        expect(page.get_by_text("2 rows were rejected")).to_be_visible()
        expect(page.get_by_test_id("stMetric").filter(has_text="Rows scored")).to_contain_text(
            "120"
        )
        expect(page.get_by_text("Predicted churn rate by Geography")).to_be_visible()
        expect(page.get_by_text("Customers by risk")).to_be_visible()
        shoot(page, "03-batch.png")
        assert not page.get_by_test_id("stException").count()
    for name in ("01-form.png", "02-prediction.png", "03-batch.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000


@contextlib.contextmanager
def chromium_page(url: str) -> Iterator[Any]:
    """Debian's Chromium, headless, with one page open at `url`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            page.goto(url)
            yield page
        finally:
            browser.close()


def shoot(page: Any, name: str) -> None:
    """A screenshot of the whole page once Streamlit has finished drawing it.

    Streamlit scrolls its main area inside the window, so the window is first made as
    tall as that area's content.
    """
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    page.wait_for_timeout(500)  # charts are drawn by Vega after the data arrives
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(1000, int(height) + 40)})
    page.wait_for_timeout(300)
    page.screenshot(path=ARTIFACTS / name)
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_model_health_tab_in_chromium(ui_url: str, live_service: LiveService) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Customers for the tab to show (the session shares this service with other tests).
    customers = [make_customer(Geography="Germany", Age=30 + i % 40) for i in range(150)]
    answer = httpx.post(f"{live_service.url}/v2/predict", json={"customers": customers})
    assert answer.status_code == 200

    with chromium_page(ui_url) as page:
        page.get_by_role("tab", name="Model health").click()
        metric = page.get_by_test_id("stMetric")
        expect(metric.filter(has_text="In drift")).to_be_visible()
        expect(page.get_by_text("Drift per feature (PSI)")).to_be_visible()
        expect(page.get_by_text("Churn probability: now against training")).to_be_visible()
        expect(page.get_by_role("heading", name="Model card", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="What drives churn, by country")).to_be_visible()
        minutes = httpx.get(f"{live_service.url}/v2/drift").json()["rolling"]["minutes"]
        page.get_by_text(f"Last {minutes} minutes").click()
        expect(page.get_by_test_id("stMetric").filter(has_text="Customers scored")).to_be_visible()
        shoot(page, "04-model-health.png")
        assert not page.get_by_test_id("stException").count()
    assert (ARTIFACTS / "04-model-health.png").stat().st_size > 10_000
