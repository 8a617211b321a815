"""Each route's answer, decided by one function, whichever layer runs it.

BentoML's router (service.py's APIs), the FastAPI app (`churn.serving.app`) and the
fast dispatch (`churn.serving.fastpath`) all call these; none decides an answer of its
own. Errors are raised as `churn.record.errors.ChurnError` and shaped by
`churn.serving.responses.error_response`. The old Flask routes answer byte for byte
what Flask's `jsonify` sent (sorted keys, no spaces, a trailing newline), except that
where the old app crashed with a 500 they answer a 4xx that names the field or rows.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import ClassVar

import anyio
import bentoml
from fastapi import Request
from pydantic import RootModel, TypeAdapter, ValidationError
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from churn.record.answers import Explanation, ModelInfo, Prediction
from churn.record.errors import BadRequest, ChurnError
from churn.record.outcome import label_of
from churn.record.schema import Customer, CustomerFeatures
from churn.scoring.files import flask_json_bytes, score_file, score_legacy_file
from churn.scoring.predictor import ChurnPredictor
from churn.serving.batching import Batcher
from churn.serving.negotiation import JSON, negotiated_format
from churn.serving.responses import validation_error
from churn.serving.uploads import COPY_CHUNK, save_upload

_PREDICTIONS = TypeAdapter(list[Prediction])


def predictions_json(predictions: list[Prediction]) -> bytes:
    return _PREDICTIONS.dump_json(predictions)


# The old app's two answers, as its `jsonify` wrote them.
LEGACY_ANSWERS = {
    is_churn: flask_json_bytes({"Prediction": label_of(is_churn)}) for is_churn in (False, True)
}


# `/v2/predict`'s answer as the OpenAPI document states it. The API method itself answers
# with `predict`'s bytes below: serialized once and sent with their length, where
# BentoML's own path for a list validates it again, dumps it twice and sends it in three
# messages (a tenth of a request's time, benchmarks/README.md). BentoML's lazy top-level
# module gives mypy no type for `bentoml.IODescriptor`.
class PredictionsAnswer(bentoml.IODescriptor, RootModel[list[Prediction]]):  # type: ignore[misc]
    """One prediction per customer sent, in the order sent."""

    media_type: ClassVar[str | None] = JSON


def parse_customer(body: bytes) -> CustomerFeatures:
    if not body.strip():
        raise BadRequest("The body is empty; send one customer as a JSON object.")
    try:
        return CustomerFeatures.model_validate_json(body)
    except ValidationError as error:
        details = error.errors(include_url=False, include_input=False)
        raise validation_error(details, "one customer as a JSON object") from None


def legacy_customer(predictor: ChurnPredictor, body: bytes) -> bytes:
    """`POST /v1/customer`: `{"Prediction": "churn" | "not churn"}` for one customer."""
    return LEGACY_ANSWERS[predictor.is_churn(parse_customer(body))]


async def predict(batcher: Batcher, customers: list[Customer]) -> bytes:
    """`POST /v2/predict`: each customer's probability, label, band and model version.

    Raises `Overloaded` (503) when batching sheds the request.
    """
    return predictions_json(await batcher(customers))


def explain(predictor: ChurnPredictor, customer: Customer) -> Explanation:
    """`POST /v2/explain`: the factors behind one customer's risk (exact TreeSHAP)."""
    return predictor.explain(customer)


def model_info(predictor: ChurnPredictor) -> ModelInfo:
    """`GET /v2/model`: the model this service runs, with its feature schema."""
    return predictor.info()


async def legacy_customer_batch(
    predictor: ChurnPredictor, request: Request, *, max_rows: int
) -> Response:
    """`POST /v1/customerbatch`: {CustomerId: "Churn" | "Not Churn"} for a CSV upload."""
    path, _ = await save_upload(request)
    try:
        answers = await anyio.to_thread.run_sync(
            functools.partial(score_legacy_file, predictor, path, max_rows=max_rows)
        )
        body = await anyio.to_thread.run_sync(flask_json_bytes, answers)
    finally:
        path.unlink(missing_ok=True)
    return Response(body, media_type=JSON)


async def predict_file(predictor: ChurnPredictor, request: Request, *, max_rows: int) -> Response:
    """`POST /v2/predict-file`: every row of a CSV upload, scored or rejected with reasons."""
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
            functools.partial(score_file, predictor, path, out, output_format, max_rows=max_rows)
        )
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        path.unlink(missing_ok=True)
    return _ResultsFile(
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


class _ResultsFile(FileResponse):
    # Starlette reads a file to send 64 KB at a time, each read in a worker thread and
    # each piece through every middleware: 900 of them for a million rows' results.
    chunk_size = COPY_CHUNK
