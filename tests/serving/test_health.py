"""The model-health routes (churn/serving/health.py) as the running service serves them:
the model card, and /v2/model pointing to it. Live drift: tests/monitoring/test_live_service.py."""

from __future__ import annotations

import httpx

from churn.model.artifact import MODELS_DIR
from churn.monitoring.card import card_paths
from tests.conftest import LiveService

BUNDLED = MODELS_DIR / "churn_prediction_model_v1_0.joblib"


def test_model_info_points_to_the_card_which_is_the_bundled_models(
    live_service: LiveService,
) -> None:
    info = httpx.get(f"{live_service.url}/v2/model").json()
    assert info["model_card"] == "/v2/model/card"
    page = httpx.get(live_service.url + info["model_card"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    markdown = httpx.get(live_service.url + info["model_card"] + ".md")
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    # The Bento carries the card in the model's metadata: the same card as beside the file.
    markdown_file, page_file = card_paths(BUNDLED)
    assert markdown.text == markdown_file.read_text(encoding="utf-8")
    assert page.text == page_file.read_text(encoding="utf-8")


def test_the_card_routes_are_documented(live_service: LiveService) -> None:
    paths = httpx.get(f"{live_service.url}/docs.json").json()["paths"]
    assert {"/v2/model/card", "/v2/model/card.md"} <= set(paths)
    assert "text/html" in paths["/v2/model/card"]["get"]["responses"]["200"]["content"]
