"""The "Model health" tab, driven by Streamlit's AppTest against the real service."""

from __future__ import annotations

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from churn.clients.client import ChurnClient
from churn.record.schema import FEATURE_NAMES
from tests.clients.ui.drive import chart_data, chart_title, charts, metrics, open_page
from tests.conftest import IMPORTED_SHA256, ImportedService, wait_until
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


def _origin_table(page: AppTest) -> dict[str, str]:
    (table,) = [t.value for t in page.table if "value" in t.value.columns]
    return {str(k): str(v) for k, v in table["value"].items()}


def test_the_tab_says_the_model_was_trained_here(page_env: str) -> None:
    page = open_page()
    with ChurnClient(page_env) as client:
        info = client.model_info()
    assert not page.exception
    assert info.origin == "trained here by churn train on synthetic_customers.csv"
    shown = " ".join(str(m.value) for m in page.markdown)
    assert f"`{info.model_tag}`: trained here by churn train on synthetic\\_customers.csv." in shown
    rows = _origin_table(page)
    assert rows["Flags a customer"] == f"at a churn probability of {info.threshold:.0%} or more"
    assert "Trained" in rows


def test_the_tab_says_where_an_imported_model_came_from(
    imported_service: ImportedService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_API_URL", imported_service.url)
    page = open_page()
    assert not page.exception
    shown = " ".join(str(m.value) for m in page.markdown)
    assert (
        f"`{imported_service.tag}`: imported from churn\\_prediction\\_model\\_v1\\_0.joblib "
        "\\(scikit-learn 1.6.1, XGBoost 2.1.4\\); parity on 3,000 customers: 0 labels differ."
    ) in shown
    rows = _origin_table(page)
    assert rows["Flags a customer"] == "at a churn probability above 50%"
    assert rows["Made with"] == "scikit-learn 1.6.1, xgboost 2.1.4"
    assert rows["Its SHA-256"] == IMPORTED_SHA256
    assert rows["Parity"].startswith(
        "3,000 customers (generated: every category and each feature's range): 0 labels differ"
    )
    # Without a reference profile there is no live drift: the tab says so, no alarm.
    assert any("no reference profile" in str(i.value) for i in page.info)
    # The sidebar says the same rule, and that it was imported.
    assert any("imported" in str(c.value) for c in page.sidebar.caption)
