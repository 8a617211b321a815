"""The "Model health" tab, driven by Streamlit's AppTest against the real service."""

from __future__ import annotations

import httpx
import pytest

from churn.clients.client import ChurnClient
from churn.record.schema import FEATURE_NAMES
from tests.clients.ui.drive import chart_data, chart_title, charts, metrics, open_page
from tests.conftest import wait_until
from tests.factories import make_customer

pytestmark = pytest.mark.slow


@pytest.fixture
def scored(page_env: str) -> str:
    """Customers the service has scored, so that the tab has something to show."""
    customers = [make_customer(Age=20 + i % 60, Geography="Germany") for i in range(150)]
    answer = httpx.post(f"{page_env}/v2/predict", json={"customers": customers}, timeout=30)
    assert answer.status_code == 200
    # Shown when their window (a minute, in the session's service) closes.
    with ChurnClient(page_env) as client:
        wait_until(lambda: client.drift().customers >= len(customers), "them shown", 80)
    return page_env


def test_the_tab_shows_live_drift_per_feature_and_the_model_card(scored: str) -> None:
    page = open_page()
    with ChurnClient(scored) as client:
        report = client.drift()
        card = client.model_card()
    assert not page.exception
    assert [tab.label for tab in page.tabs] == [
        "One customer",
        "A file of customers",
        "Model health",
    ]
    assert metrics(page)["Customers scored"] == f"{report.customers:,}"
    table = next(d.value for d in page.dataframe if "psi" in d.value.columns)
    assert table["feature"].tolist() == [*FEATURE_NAMES, "score"]
    expected = {**{n: f.status for n, f in report.features.items()}, "score": report.score.status}
    assert dict(zip(table["feature"], table["status"], strict=True)) == expected
    # The session's service is shared: other tests' customers are counted too.
    assert report.customers >= 150
    titles = [chart_title(chart) for chart in charts(page)]
    assert "Drift per feature (PSI)" in titles
    assert "Churn probability: now against training" in titles
    score = next(c for c in charts(page) if chart_title(c).startswith("Churn probability"))
    shares = chart_data(score)
    assert shares[shares["customers"] == "training"]["share"].sum() == pytest.approx(1, abs=1e-4)
    assert any(card.strip() in str(m.value) for m in page.markdown)
    assert any("## Holdout performance" in str(m.value) for m in page.markdown)


def test_the_rolling_window_is_one_click_away(scored: str) -> None:
    page = open_page()
    window = next(r for r in page.radio if r.label == "Window")
    page = window.set_value(window.options[1]).run()
    with ChurnClient(scored) as client:
        rolling = client.drift().rolling
    assert window.options[1] == f"Last {rolling.minutes} minutes"
    assert metrics(page)["Customers scored"] == f"{rolling.customers:,}"
    assert not page.exception
