"""The routes BentoML's API decorator cannot express, as one FastAPI app at the root.

Each path here documents its route, turns the HTTP request into the route's inputs
(the body, a saved upload, the output format negotiated) and the answer of
`churn.serving.routes`, which decides it, into the HTTP response.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, JSONResponse, Response

from churn.record.answers import FileResults, LegacyPrediction, ModelInfo
from churn.record.errors import ChurnError
from churn.record.outcome import LegacyBatchLabel
from churn.record.schema import CustomerFeatures
from churn.scoring.predictor import ChurnPredictor
from churn.serving import routes
from churn.serving.health import health_routes
from churn.serving.negotiation import (
    FORMAT_SCHEMA,
    JSON,
    MEDIA_TYPES,
    NEGOTIATION,
    negotiated_format,
)
from churn.serving.openapi import error_answers, upload_body
from churn.serving.responses import error_response
from churn.serving.uploads import COPY_CHUNK, saved_upload


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
    # The document does not change while the worker runs: built on the first request.
    openapi = functools.cache(openapi)

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
        async with saved_upload(request) as (upload, _):
            body = await routes.legacy_customer_batch(predictor(), upload, max_rows=max_rows)
        return Response(body, media_type=JSON)

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
        async with saved_upload(request) as (upload, fields):
            output_format = negotiated_format(
                request.query_params.getlist("format"),
                fields.get("format"),
                ",".join(request.headers.getlist("accept")),
            )
            results = await routes.predict_file(
                predictor(), upload, output_format, max_rows=max_rows
            )
        return results_response(results)

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


def results_response(results: routes.ResultsFile) -> FileResponse:
    """The results file sent as an attachment, its accounting in headers, deleted once sent."""
    summary = results.summary
    return _ResultsFile(
        results.path,
        media_type=MEDIA_TYPES[results.output_format],
        filename=f"churn-predictions.{results.output_format}",
        headers={
            # The answer's type can follow Accept: a cache must not reuse it for another.
            "Vary": "Accept",
            "X-Rows-In": str(summary.rows_in),
            "X-Rows-Scored": str(summary.rows_scored),
            "X-Rows-Rejected": str(summary.rows_rejected),
            "X-Predicted-Churn": str(summary.predicted_churn),
            "X-Model-Version": summary.model_version,
        },
        background=BackgroundTask(results.path.unlink, missing_ok=True),
    )


class _ResultsFile(FileResponse):
    # Starlette reads a file to send 64 KB at a time, each read in a worker thread and
    # each piece through every middleware: 900 of them for a million rows' results.
    chunk_size = COPY_CHUNK
