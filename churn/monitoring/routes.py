"""The service's model-health routes: the model card (and, live, the drift).

Registered on the service's FastAPI app (`churn.serving.routes.service_app`), so that the guard's
API keys, limits, request ids and access log apply to them as to every route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

from churn.monitoring.card import card_document, to_html, to_markdown
from churn.record.answers import MODEL_CARD_PATH, ErrorBody

if TYPE_CHECKING:
    from churn.scoring.predictor import ChurnPredictor

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
