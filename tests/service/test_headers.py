"""Content-Security-Policy and nosniff on every answer of the live service, and the
pages they protect still working in a real browser."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LiveService
from tests.factories import BANK_COLUMNS, bank_row

STRICT = "default-src 'none'; style-src 'unsafe-inline'"


def _answers(url: str) -> dict[str, httpx.Response]:
    upload = ",".join(BANK_COLUMNS) + "\n" + ",".join(map(str, bank_row())) + "\n"
    with httpx.Client(base_url=url, timeout=30) as client:
        return {
            "card": client.get("/v2/model/card"),
            "card.md": client.get("/v2/model/card.md"),
            "results.csv": client.post(
                "/v2/predict-file", files={"file": ("x.csv", upload, "text/csv")}
            ),
            "results.json": client.post(
                "/v2/predict-file?format=json", files={"file": ("x.csv", upload, "text/csv")}
            ),
            "json": client.get("/v2/model"),
            "refused": client.post("/v2/predict", content=b"<script>alert(1)</script>"),
            "unknown": client.get("/<script>alert(1)</script>"),
            "openapi": client.get("/docs.json"),
            "script": client.get("/static_content/swagger-ui-bundle.js"),
        }


def test_every_answer_is_sniffed_as_nothing_else_and_runs_nothing(
    live_service: LiveService,
) -> None:
    for name, answer in _answers(live_service.url).items():
        assert answer.headers["x-content-type-options"] == "nosniff", name
        policy = answer.headers["content-security-policy"]
        assert policy.startswith(STRICT), name
        assert "frame-ancestors 'none'" in policy, name
    docs = httpx.get(live_service.url + "/")
    assert docs.headers["x-content-type-options"] == "nosniff"
    assert "script-src" not in docs.headers["content-security-policy"]  # 'self' only
    assert docs.headers["content-security-policy"].startswith("default-src 'self'")


def _console(page: Any) -> list[str]:
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    return messages


@pytest.mark.slow
def test_the_card_and_the_documentation_work_under_their_policies(
    live_service: LiveService,
) -> None:
    from playwright.sync_api import expect

    from tests.clients.ui.test_browser import CHROMIUM, WAIT_MS, chromium_page

    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: install Debian's with `apt-get install -y chromium`")
    expect.set_options(timeout=WAIT_MS)
    with chromium_page(live_service.url + "/v2/model/card") as page:
        expect(page.get_by_role("heading", name="Holdout performance")).to_be_visible()
        # The page's own <style> applies: the policy lets inline styles through.
        collapse = page.evaluate("getComputedStyle(document.querySelector('table')).borderCollapse")
        assert collapse == "collapse"
    with chromium_page(live_service.url + "/") as page:
        console = _console(page)
        page.reload()
        # Swagger UI draws the routes from /docs.json with its own scripts.
        expect(page.get_by_text("/v2/predict-file").first).to_be_visible()
        blocked = [m for m in console if "Content Security Policy" in m]
        # Only BentoML's inline tag-manager script, which would call out to Google.
        assert all("inline script" in m for m in blocked), blocked
