"""The routes BentoML's API decorator cannot express, as one FastAPI app at the root.

Each path here only documents its route and calls `churn.serving.routes`, which
decides the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import FileResponse, JSONResponse, Response

from churn.monitoring.routes import health_routes
from churn.record.answers import FileResults, LegacyPrediction, ModelInfo
from churn.record.errors import ChurnError
from churn.record.outcome import LegacyBatchLabel
from churn.record.schema import CustomerFeatures
from churn.scoring.predictor import ChurnPredictor
from churn.serving import routes
from churn.serving.negotiation import FORMAT_SCHEMA, JSON, NEGOTIATION
from churn.serving.openapi import error_answers, upload_body
from churn.serving.responses import error_response


def service_app(
    predictor: Callable[[], ChurnPredictor],
    *,
    max_rows: int,
    openapi: Callable[[], dict[str, Any]],
) -> FastAPI:
    """The routes BentoML's API decorator cannot express, mounted at the service's root.

    The old Flask contract (byte-exact answers), file scoring (streamed, with
    multipart parsing that answers 400 on a malformed upload) and `GET /v2/model`.
    """
    app = FastAPI(title="churn", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ChurnError)
    async def churn_error(_request: Request, error: ChurnError) -> JSONResponse:
        return error_response(error)

    @app.get("/docs.json", include_in_schema=False)
    async def docs() -> JSONResponse:
        # Matched before BentoML's own /docs.json, which the docs page then reads.
        return JSONResponse(openapi())

    @app.post(
        "/v1/customer",
        summary="Old contract: one customer -> churn / not churn",
        response_model=LegacyPrediction,
        responses=error_answers(400, 401, 411, 413, 422),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": CustomerFeatures.model_json_schema()}},
            }
        },
    )
    async def customer(request: Request) -> Response:
        return Response(routes.legacy_customer(predictor(), await request.body()), media_type=JSON)

    @app.post(
        "/v1/customerbatch",
        summary="Old contract: CSV upload (field `file`) -> {CustomerId: Churn / Not Churn}",
        response_model=dict[str, LegacyBatchLabel],
        responses=error_answers(400, 401, 411, 413, 422),
        openapi_extra=upload_body(),
    )
    async def customer_batch(request: Request) -> Response:
        return await routes.legacy_customer_batch(predictor(), request, max_rows=max_rows)

    @app.post(
        "/v2/predict-file",
        summary="Score a CSV upload, accounting for every row",
        description=(
            "Upload a CSV in the field `file`. Valid rows are scored; invalid rows come back "
            "with their row number and reasons; rows in = rows scored + rows rejected (also in "
            "the X-Rows-In, X-Rows-Scored, X-Rows-Rejected and X-Predicted-Churn headers).\n\n"
            + NEGOTIATION
        ),
        response_class=FileResponse,
        responses={
            200: {
                "description": "One result per input row, as CSV or as JSON.",
                # FastAPI puts `model` under application/json, as a reference to the
                # document's components (an inline schema's own `$defs` would not resolve).
                "model": FileResults,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            **error_answers(400, 401, 406, 411, 413, 422),
        },
        openapi_extra={
            "parameters": [
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "description": "csv or json; overrides Accept.",
                    "schema": FORMAT_SCHEMA,
                }
            ],
            **upload_body({"format": {**FORMAT_SCHEMA, "description": "As ?format."}}),
        },
    )
    async def predict_file(request: Request) -> Response:
        return await routes.predict_file(predictor(), request, max_rows=max_rows)

    @app.get(
        "/v2/model",
        response_model=ModelInfo,
        summary="The model this service runs, with its feature schema",
        responses=error_answers(401),
    )
    async def model_info() -> Any:
        return routes.model_info(predictor())

    # Model health: the model card (churn.monitoring).
    app.include_router(health_routes(predictor))
    return app
