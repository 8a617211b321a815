"""The service's model-health routes: live drift, and the model card.

Registered on the service's FastAPI app (`churn.serving.app.service_app`), so that the
guard's API keys, limits, request ids and access log apply to them as to every route.
What they show is computed in `churn.monitoring`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

from churn.monitoring.card import card_document
from churn.monitoring.document import to_html, to_markdown
from churn.monitoring.drift import MIN_CUSTOMERS
from churn.monitoring.live import live_report
from churn.record.answers import MODEL_CARD_PATH, DriftReport, ErrorBody

if TYPE_CHECKING:
    from churn.scoring.predictor import ChurnPredictor

DRIFT_PATH = "/v2/drift"
MARKDOWN = "text/markdown; charset=utf-8"
_KEY_REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "An API key is required or not valid."}
}


def health_routes(predictor: Callable[[], ChurnPredictor]) -> APIRouter:
    router = APIRouter()
    rendered: dict[str, str] = {}  # the worker's model does not change: render once

    def card(form: str) -> str:
        if form not in rendered:
            document = card_document(predictor().metadata)
            rendered.update(html=to_html(document), markdown=to_markdown(document))
        return rendered[form]

    @router.get(
        DRIFT_PATH,
        response_model=DriftReport,
        summary="Live drift of the customers scored, against the training data",
        description=(
            f"PSI and status (ok < 0.1 <= warn < 0.25 <= drift; insufficient under "
            f"{MIN_CUSTOMERS} customers) per feature and for the score, over the windows of "
            "CHURN_DRIFT_WINDOW_MINUTES minutes of the clock closed since the service "
            "started (top level) and over the last one closed (`rolling`), with each bin's "
            "share in the training data and in the window. A worker's window counts only "
            f"with {MIN_CUSTOMERS} customers or more, and a window under the minimum shows "
            "its count alone, so that no reading, nor the difference of two, shows a customer. "
            "A model without a reference profile (imported without reference data) answers "
            "with `reference: false` and a `message` saying so."
        ),
        responses={
            409: {"model": ErrorBody, "description": "Live profiling is off."},
            503: {"model": ErrorBody, "description": "The drift counts cannot be read now."},
            **_KEY_REFUSED,
        },
    )
    async def drift() -> DriftReport:
        current = predictor()
        # Reads every worker's counts: off the event loop, which scores meanwhile.
        return await anyio.to_thread.run_sync(live_report, current.scorer, current.metadata)

    @router.get(
        MODEL_CARD_PATH,
        summary="The model card, as a web page",
        description=(
            "Holdout metrics overall, per Geography and per Gender; calibration; what drives "
            f"churn in each country; the decision threshold and why. Markdown: {MODEL_CARD_PATH}.md"
        ),
        response_class=HTMLResponse,
        responses=_KEY_REFUSED,
    )
    async def model_card() -> Response:
        return HTMLResponse(card("html"))

    @router.get(
        MODEL_CARD_PATH + ".md",
        summary="The model card, as Markdown",
        responses={
            200: {"content": {"text/markdown": {"schema": {"type": "string"}}}},
            **_KEY_REFUSED,
        },
        response_class=Response,
    )
    async def model_card_markdown() -> Response:
        return Response(card("markdown"), media_type=MARKDOWN)

    return router
