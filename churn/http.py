"""The HTTP edge: errors to JSON responses in one place, and the old Flask contract.

`error_response` is the only function that turns an exception into a status code.
`legacy_app` keeps the old Flask routes, answering byte for byte what Flask's
`jsonify` sent (sorted keys, no spaces, a trailing newline), except that where the old
app crashed with a 500 it now answers a 4xx that names the field or rows.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import anyio
import bentoml
from fastapi import FastAPI, Request
from pydantic import RootModel, TypeAdapter, ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.responses import FileResponse, JSONResponse, Response

from churn.api import ErrorBody, FileResults, LegacyPrediction, ModelInfo, Prediction
from churn.batch import OutputFormat, flask_json_bytes, score_file, score_legacy_file
from churn.errors import BadRequest, ChurnError, InvalidInput, Problem
from churn.monitoring.routes import health_routes
from churn.predictor import ChurnPredictor
from churn.schema import SPECS_BY_NAME, CustomerFeatures

JSON = "application/json"
_COPY_CHUNK = 1 << 20


_PREDICTIONS = TypeAdapter(list[Prediction])


def predictions_json(predictions: list[Prediction]) -> bytes:
    return _PREDICTIONS.dump_json(predictions)


# The old app's two answers, as its `jsonify` wrote them.
LEGACY_ANSWERS = {
    True: flask_json_bytes({"Prediction": "churn"}),
    False: flask_json_bytes({"Prediction": "not churn"}),
}


# BentoML's own answer for a list validates the list into a model again, dumps it to
# Python objects and then to JSON, and sends it in three messages with no length. This
# one serializes once and sends the body with its length: about a tenth of a
# `/v2/predict` request's time in the app (benchmarks/README.md). BentoML's lazy
# top-level module gives mypy no type for `bentoml.IODescriptor`.
class PredictionsAnswer(bentoml.IODescriptor, RootModel[list[Prediction]]):  # type: ignore[misc]
    """One prediction per customer sent, in the order sent."""

    media_type: ClassVar[str | None] = JSON

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        return Response(predictions_json(obj), media_type=JSON)


def error_response(error: ChurnError) -> JSONResponse:
    return JSONResponse(error.as_json(), status_code=error.status_code, headers=error.headers())


def validation_error(details: Iterable[Mapping[str, Any]], expected: str) -> ChurnError:
    """Pydantic's error details (ours, or BentoML's) as one error for the client.

    400 when the body is not JSON at all; otherwise 422 with a problem per field that
    names it (its path, e.g. `customers.1.Geography`) and what it accepts.
    """
    details = list(details)
    if any(detail.get("type") == "json_invalid" for detail in details):
        return BadRequest(f"The body is not valid JSON; send {expected}.")
    problems = []
    for detail in details:
        location = [str(part) for part in detail.get("loc", ())]
        spec = SPECS_BY_NAME.get(location[-1]) if location else None
        problems.append(
            Problem(
                str(detail.get("msg", "is not valid")),
                field=".".join(location) or None,
                allowed=spec.allowed() if spec else None,
            )
        )
    fields = ", ".join(sorted({p.field for p in problems if p.field})) or "the body"
    return InvalidInput(f"The request does not fit the schema: check {fields}.", problems)


def parse_customer(body: bytes) -> CustomerFeatures:
    if not body.strip():
        raise BadRequest("The body is empty; send one customer as a JSON object.")
    try:
        return CustomerFeatures.model_validate_json(body)
    except ValidationError as error:
        details = error.errors(include_url=False, include_input=False)
        raise validation_error(details, "one customer as a JSON object") from None


async def save_upload(request: Request, field: str = "file") -> tuple[Path, dict[str, str]]:
    """The one file in the multipart field `field`, saved to a temporary file the caller
    must delete, and the form's text fields.

    A form that would make the route pick one of several values (two files, a file in
    another field, a text field sent twice) is refused: scoring one and dropping the
    rest would lose customers without a word.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise BadRequest(f"Send the CSV as a multipart/form-data upload in the field {field!r}.")
    try:
        form = await request.form()
    except Exception as error:  # Starlette raises several types for a malformed body.
        raise BadRequest(f"The multipart body cannot be read: {error}") from None
    try:
        upload = _the_one_file(form.multi_items(), field)
        descriptor, name = tempfile.mkstemp(prefix="churn-upload-", suffix=".csv")
        path = Path(name)
        try:
            with os.fdopen(descriptor, "wb") as target:
                await anyio.to_thread.run_sync(shutil.copyfileobj, upload.file, target, _COPY_CHUNK)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    finally:
        await form.close()
    fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    return path, fields


def _the_one_file(items: list[tuple[str, UploadFile | str]], field: str) -> UploadFile:
    files = [(key, value) for key, value in items if isinstance(value, UploadFile)]
    elsewhere = sorted({key for key, _ in files if key != field})
    if elsewhere:
        names = ", ".join(repr(key) for key in elsewhere)
        raise BadRequest(f"Send the CSV in the field {field!r} only; files came in {names}.")
    if not files:
        raise BadRequest(f"The upload has no file in the field {field!r}.")
    if len(files) > 1:
        raise BadRequest(
            f"The upload has {len(files)} files in the field {field!r}; send one file a request."
        )
    texts = Counter(key for key, value in items if isinstance(value, str))
    repeated = sorted(key for key, count in texts.items() if count > 1)
    if repeated:
        names = ", ".join(repr(key) for key in repeated)
        raise BadRequest(f"Send each form field once; {names} came more than once.")
    return files[0][1]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give, all in one shape."""
    return {status: {"model": ErrorBody, "description": _WORDS[status]} for status in statuses}


def _upload_body(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"file": {"type": "string", "format": "binary"}, **(extra or {})}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"], "properties": properties}
                }
            },
        }
    }


def document_errors(spec: dict[str, Any], api_paths: frozenset[str]) -> dict[str, Any]:
    """BentoML's OpenAPI document, with the error answers its APIs really give.

    BentoML documents its validation error with a `detail` string; the guard sends our
    `ErrorBody` instead (400 for a body that is not JSON, 422 for values that break the
    schema), and can answer 401, 411, 413 and 415 before BentoML runs.
    """
    spec = copy.deepcopy(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in ErrorBody.model_json_schema(ref_template=_REF).get("$defs", {}).items():
        schemas[name] = schema
    schemas["ErrorBody"] = {
        k: v for k, v in ErrorBody.model_json_schema(ref_template=_REF).items() if k != "$defs"
    }
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}}
    for path in api_paths:
        operation = spec["paths"][path]["post"]
        responses = {str(status): answer for status, answer in operation["responses"].items()}
        for status in (400, 401, 411, 413, 415, 422):
            responses[str(status)] = {"description": _WORDS[status], "content": error}
        operation["responses"] = responses
    return spec


_REF = "#/components/schemas/{model}"
_WORDS = {
    400: "The request cannot be read (not JSON, not a CSV, no file).",
    401: "An API key is required or was not valid (when CHURN_API_KEYS is set).",
    411: "A body was sent without Content-Length.",
    413: "The body or the file is larger than the service accepts.",
    415: "The route takes a JSON body.",
    422: "Values break the customer schema; each problem names the field or row.",
}


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
        responses=_errors(400, 401, 411, 413, 422),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": CustomerFeatures.model_json_schema()}},
            }
        },
    )
    async def customer(request: Request) -> Response:
        features = parse_customer(await request.body())
        return Response(LEGACY_ANSWERS[predictor().is_churn(features)], media_type=JSON)

    @app.post(
        "/v1/customerbatch",
        summary="Old contract: CSV upload (field `file`) -> {CustomerId: Churn / Not Churn}",
        response_model=dict[str, Literal["Churn", "Not Churn"]],
        responses=_errors(400, 401, 411, 413, 422),
        openapi_extra=_upload_body(),
    )
    async def customer_batch(request: Request) -> Response:
        path, _ = await save_upload(request)
        try:
            answers = await anyio.to_thread.run_sync(
                functools.partial(score_legacy_file, predictor(), path, max_rows=max_rows)
            )
            body = await anyio.to_thread.run_sync(flask_json_bytes, answers)
        finally:
            path.unlink(missing_ok=True)
        return Response(body, media_type=JSON)

    @app.post(
        "/v2/predict-file",
        summary="Score a CSV upload, accounting for every row",
        description=(
            "Upload a CSV in the field `file`. Valid rows are scored; invalid rows come back "
            "with their row number and reasons; rows in = rows scored + rows rejected. "
            "CSV by default (the summary is in the X-Rows-In, X-Rows-Scored, X-Rows-Rejected "
            "and X-Predicted-Churn headers); JSON with the form field `format=json`."
        ),
        response_class=FileResponse,
        responses={
            200: {
                "description": "One result per input row.",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/json": {"schema": FileResults.model_json_schema()},
                },
            },
            **_errors(400, 401, 411, 413, 422),
        },
        openapi_extra=_upload_body({"format": {"type": "string", "enum": ["csv", "json"]}}),
    )
    async def predict_file(request: Request) -> Response:
        path, fields = await save_upload(request)
        try:
            output_format = _output_format(fields)
        except ChurnError:
            path.unlink()
            raise
        descriptor, name = tempfile.mkstemp(prefix="churn-results-", suffix=f".{output_format}")
        os.close(descriptor)
        out = Path(name)
        try:
            summary = await anyio.to_thread.run_sync(
                functools.partial(
                    score_file, predictor(), path, out, output_format, max_rows=max_rows
                )
            )
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        finally:
            path.unlink(missing_ok=True)
        return FileResponse(
            out,
            media_type="text/csv" if output_format == "csv" else JSON,
            filename=f"churn-predictions.{output_format}",
            headers={
                "X-Rows-In": str(summary.rows_in),
                "X-Rows-Scored": str(summary.rows_scored),
                "X-Rows-Rejected": str(summary.rows_rejected),
                "X-Predicted-Churn": str(summary.predicted_churn),
                "X-Model-Version": summary.model_version,
            },
            background=BackgroundTask(out.unlink, missing_ok=True),
        )

    @app.get(
        "/v2/model",
        response_model=ModelInfo,
        summary="The model this service runs, with its feature schema",
        responses=_errors(401),
    )
    async def model_info() -> Any:
        return predictor().info()

    # Model health: the model card (churn.monitoring).
    app.include_router(health_routes(predictor))
    return app


def _output_format(fields: dict[str, str]) -> OutputFormat:
    value = fields.get("format", "csv")
    if value == "csv":
        return "csv"
    if value == "json":
        return "json"
    raise InvalidInput(
        "The form field 'format' must be csv or json.",
        [Problem("is not allowed", field="format", allowed="csv, json")],
    )
