"""The HTTP edge: errors to JSON responses in one place, and the old Flask contract.

`error_response` is the only function that turns an exception into a status code.
`legacy_app` keeps the old Flask routes, answering byte for byte what Flask's
`jsonify` sent (sorted keys, no spaces, a trailing newline), except that where the old
app crashed with a 500 it now answers a 4xx that names the field or rows.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
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
from churn.errors import BadRequest, ChurnError, InvalidInput, NotAcceptable, Problem
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


def openapi_document(
    spec: dict[str, Any], api_paths: frozenset[str], *, model_version: str
) -> dict[str, Any]:
    """BentoML's OpenAPI document, made to state the service's contract.

    - OpenAPI 3.1, not the 3.0.2 BentoML writes: the schemas are pydantic's, in JSON
      Schema 2020-12 (an optional field is `anyOf` with `{"type": "null"}`), which is
      3.1's dialect and invalid in 3.0.
    - `info` says what the service is and which build: the package's version with the
      model's as build metadata (BentoML writes "None" and its own badges).
    - BentoML's APIs: their body is required, and their errors are ours. BentoML
      documents its validation error with a `detail` string; the guard sends our
      `ErrorBody` instead (400 for a body that is not JSON, 422 for values that break
      the schema), and can answer 401, 411, 413 and 415 before BentoML runs.
    """
    spec = copy.deepcopy(spec)
    spec["openapi"] = "3.1.0"
    spec["info"] = {
        "title": spec.get("info", {}).get("title", "churn"),
        "version": f"{importlib.metadata.version('churn')}+model.{model_version}",
        "description": _DESCRIPTION,
    }
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in ErrorBody.model_json_schema(ref_template=_REF).get("$defs", {}).items():
        schemas[name] = schema
    schemas["ErrorBody"] = {
        k: v for k, v in ErrorBody.model_json_schema(ref_template=_REF).items() if k != "$defs"
    }
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}}
    for path in api_paths:
        operation = spec["paths"][path]["post"]
        # BentoML leaves it optional, but an empty body is a 422 (its fields are required).
        operation["requestBody"]["required"] = True
        responses = {str(status): answer for status, answer in operation["responses"].items()}
        for status in (400, 401, 411, 413, 415, 422):
            responses[str(status)] = {"description": _WORDS[status], "content": error}
        operation["responses"] = responses
    return spec


_DESCRIPTION = (
    "The bank's churn model (a scikit-learn pipeline with XGBoost) as a service: the churn "
    "risk of retail customers, one at a time or a whole file.\n\n"
    "- `/v1/customer` and `/v1/customerbatch` keep the old Flask service's contract, "
    "byte for byte.\n"
    "- `/v2/predict` gives each customer's churn probability, label, risk band and the "
    "model version; `/v2/predict-file` scores a CSV upload and accounts for every row; "
    "`/v2/explain` gives the factors behind one customer's risk; `/v2/model` describes "
    "the model and its feature schema.\n\n"
    "Every error is JSON in one shape (`ErrorBody`): a 4xx names the field or row and what "
    "it allows. When the service has API keys, send `Authorization: Bearer <key>`."
)
_REF = "#/components/schemas/{model}"
_WORDS = {
    400: "The request cannot be read (not JSON, not a CSV, no file).",
    401: "An API key is required or was not valid (when CHURN_API_KEYS is set).",
    406: "The Accept header admits none of the media types the route answers in.",
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
            "with their row number and reasons; rows in = rows scored + rows rejected (also in "
            "the X-Rows-In, X-Rows-Scored, X-Rows-Rejected and X-Predicted-Churn headers).\n\n"
            + _NEGOTIATION
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
            **_errors(400, 401, 406, 411, 413, 422),
        },
        openapi_extra={
            "parameters": [
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "description": "csv or json; overrides Accept.",
                    "schema": _FORMAT_SCHEMA,
                }
            ],
            **_upload_body({"format": {**_FORMAT_SCHEMA, "description": "As ?format."}}),
        },
    )
    async def predict_file(request: Request) -> Response:
        path, fields = await save_upload(request)
        try:
            output_format = negotiated_format(
                request.query_params.getlist("format"),
                fields.get("format"),
                ",".join(request.headers.getlist("accept")),
            )
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
                # The answer's type can follow Accept: a cache must not reuse it for another.
                "Vary": "Accept",
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

    # Model health: live drift and the model card (churn.monitoring).
    app.include_router(health_routes(predictor))
    return app


_MEDIA_TYPES: dict[OutputFormat, str] = {"csv": "text/csv", "json": JSON}  # preferred first
_FORMAT_SCHEMA = {"type": "string", "enum": list(_MEDIA_TYPES)}
_NEGOTIATION = (
    "The answer is CSV or JSON. An explicit choice wins: the query parameter `?format=` "
    "or the form field `format` (`csv` or `json`; if both are sent they must agree, or the "
    "answer is a 422 naming both). Otherwise the `Accept` header decides, with q-values: "
    "`text/csv`, `text/*` or `*/*` gives CSV, `application/json` or `application/*` gives "
    "JSON; on a tie the more specific media range wins, then CSV. No Accept header, or one "
    "that cannot be parsed, gives CSV. An Accept header that admits neither is a 406."
)


def negotiated_format(query: list[str], form: str | None, accept: str) -> OutputFormat:
    """The output format of `/v2/predict-file`, by the precedence in `_NEGOTIATION`.

    `query` holds every `format` query parameter sent, `form` the form field (the
    upload reader has refused it sent twice), `accept` the Accept header(s) joined.
    A value other than csv or json is a 422, as any value outside a documented enum is;
    406 is for Accept, which client libraries send without the caller choosing it.
    """
    if len(query) > 1:
        raise BadRequest("Send the query parameter 'format' once.")
    if query and form is not None and query[0] != form:
        raise InvalidInput(
            f"The query parameter format={query[0]} and the form field format={form} "
            "disagree; send one of them, or the same in both.",
            [
                Problem(f"is {query[0]!r}, the form field format {form!r}", field="query.format"),
                Problem(f"is {form!r}, the query parameter format {query[0]!r}", field="format"),
            ],
        )
    if query or form is not None:
        field, where = ("query.format", "query parameter") if query else ("format", "form field")
        value = query[0] if query else form
        if value not in _MEDIA_TYPES:
            raise InvalidInput(
                f"The {where} 'format' must be csv or json.",
                [Problem("is not allowed", field=field, allowed="csv, json")],
            )
        return value
    return _accepted(accept)


def _accepted(accept: str) -> OutputFormat:
    """The format the Accept header prefers (RFC 9110, section 12.5.1).

    A media type's quality is that of the most specific range that matches it; the
    format of highest quality wins, then the one matched more specifically, then CSV.
    """
    ranges = [parsed for part in accept.split(",") if (parsed := _media_range(part))]
    if not ranges:
        return "csv"
    ranked: list[tuple[float, int, int, OutputFormat]] = []
    for preference, (output_format, media_type) in enumerate(_MEDIA_TYPES.items()):
        matches = [
            (_specificity(media_range), quality)
            for media_range, quality in ranges
            if media_range in (media_type, media_type.split("/")[0] + "/*", "*/*")
        ]
        if matches:
            specificity, quality = max(matches)
            if quality > 0:
                ranked.append((quality, specificity, -preference, output_format))
    if not ranked:
        shown = accept if len(accept) <= _ACCEPT_CHARS else accept[:_ACCEPT_CHARS] + "..."
        raise NotAcceptable(
            f"This route answers in text/csv or application/json, and the Accept header "
            f"({shown}) admits neither; send Accept: text/csv or application/json, or "
            "?format=csv or ?format=json.",
            [Problem("admits neither", field="Accept", allowed="text/csv, application/json")],
        )
    return max(ranked)[3]


def _specificity(media_range: str) -> int:
    return 0 if media_range == "*/*" else 1 if media_range.endswith("/*") else 2


def _media_range(part: str) -> tuple[str, float] | None:
    """One element of an Accept header as (type/subtype, quality), or None if malformed."""
    media_range, *parameters = (piece.strip() for piece in part.split(";"))
    kind, slash, subtype = media_range.lower().partition("/")
    if not (kind and slash and subtype) or (kind == "*" and subtype != "*"):
        return None
    quality = 1.0
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return None
            if not 0 <= quality <= 1:
                return None
    return f"{kind}/{subtype}", quality


_ACCEPT_CHARS = 200
