"""The HTTP edge: errors to JSON responses in one place, and the old Flask contract.

`error_response` is the only function that turns an exception into a status code.
`legacy_app` keeps the old Flask routes, answering byte for byte what Flask's
`jsonify` sent (sorted keys, no spaces, a trailing newline), except that where the old
app crashed with a 500 it now answers a 4xx that names the field or rows.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response

from churn.api import ModelInfo
from churn.batch import flask_json_bytes, score_legacy_file
from churn.errors import BadRequest, ChurnError, InvalidInput, Problem
from churn.predictor import ChurnPredictor
from churn.schema import SPECS_BY_NAME, CustomerFeatures

JSON = "application/json"
_COPY_CHUNK = 1 << 20


def error_response(error: ChurnError) -> JSONResponse:
    return JSONResponse(error.as_json(), status_code=error.status_code)


def problems_from(error: ValidationError, row: int | None = None) -> list[Problem]:
    """Pydantic's errors as problems that name the field and what it accepts."""
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        location = [str(part) for part in detail["loc"]]
        field = location[-1] if location else None
        spec = SPECS_BY_NAME.get(field or "")
        problems.append(
            Problem(
                detail["msg"],
                field=".".join(location) or None,
                row=row,
                allowed=spec.allowed() if spec else None,
            )
        )
    return problems


def parse_customer(body: bytes) -> CustomerFeatures:
    if not body.strip():
        raise BadRequest("The body is empty; send one customer as a JSON object.")
    try:
        return CustomerFeatures.model_validate_json(body)
    except ValidationError as error:
        if any(detail["type"] == "json_invalid" for detail in error.errors()):
            raise BadRequest("The body is not valid JSON; send one customer object.") from None
        problems = problems_from(error)
        fields = ", ".join(sorted({p.field for p in problems if p.field})) or "the body"
        raise InvalidInput(f"Invalid customer: check {fields}.", problems) from None


async def save_upload(request: Request, field: str = "file") -> Path:
    """The multipart field `field` saved to a temporary file the caller must delete."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise BadRequest(f"Send the CSV as a multipart/form-data upload in the field {field!r}.")
    try:
        form = await request.form()
    except Exception as error:  # Starlette raises several types for a malformed body.
        raise BadRequest(f"The multipart body cannot be read: {error}") from None
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise BadRequest(f"The upload has no file in the field {field!r}.")
    descriptor, name = tempfile.mkstemp(prefix="churn-upload-", suffix=".csv")
    path = Path(name)
    with os.fdopen(descriptor, "wb") as target:
        await anyio.to_thread.run_sync(shutil.copyfileobj, upload.file, target, _COPY_CHUNK)
    await form.close()
    return path


def legacy_app(predictor: Callable[[], ChurnPredictor], *, max_rows: int) -> FastAPI:
    """The old Flask routes, plus `GET /v2/model`; mounted at the root of the service."""
    app = FastAPI(
        title="churn",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(ChurnError)
    async def churn_error(_request: Request, error: ChurnError) -> JSONResponse:
        return error_response(error)

    @app.post("/v1/customer", summary="Old contract: one customer -> churn / not churn")
    async def customer(request: Request) -> Response:
        features = parse_customer(await request.body())
        label = "churn" if predictor().is_churn(features) else "not churn"
        return Response(flask_json_bytes({"Prediction": label}), media_type=JSON)

    @app.post("/v1/customerbatch", summary="Old contract: CSV upload -> {CustomerId: label}")
    async def customer_batch(request: Request) -> Response:
        path = await save_upload(request)
        try:
            answers = await anyio.to_thread.run_sync(
                functools.partial(score_legacy_file, predictor(), path, max_rows=max_rows)
            )
            body = await anyio.to_thread.run_sync(flask_json_bytes, answers)
        finally:
            path.unlink(missing_ok=True)
        return Response(body, media_type=JSON)

    @app.get("/v2/model", response_model=ModelInfo, summary="The model this service runs")
    async def model_info() -> Any:
        return predictor().info()

    return app
