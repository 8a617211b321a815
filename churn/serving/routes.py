"""Each route's answer, decided by one function, whichever layer runs it.

BentoML's router (service.py's APIs), the FastAPI app (`churn.serving.app`) and the
fast dispatch (`churn.serving.fastpath`) all call these; none decides an answer of its
own. They take what the request says, already read (a body, customers, a saved
upload, the output format chosen), and return the answer's content; reading the
request and making the HTTP response are the layers' part. Errors are raised as
`churn.record.errors.ChurnError` and shaped by `churn.serving.responses.error_response`.
The old Flask routes answer byte for byte what Flask's `jsonify` sent (sorted keys,
no spaces, a trailing newline), except that where the old app crashed with a 500 they
answer a 4xx that names the field or rows.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio
from pydantic import TypeAdapter, ValidationError

from churn.record.answers import Explanation, FileSummary, ModelInfo, Prediction
from churn.record.errors import BadRequest
from churn.record.outcome import label_of
from churn.record.schema import Customer, CustomerFeatures
from churn.scoring.files import OutputFormat, flask_json_bytes, score_file, score_legacy_file
from churn.scoring.predictor import ChurnPredictor
from churn.serving.batching import Batcher
from churn.serving.responses import validation_error

_PREDICTIONS = TypeAdapter(list[Prediction])


def predictions_json(predictions: list[Prediction]) -> bytes:
    return _PREDICTIONS.dump_json(predictions)


# The old app's two answers, as its `jsonify` wrote them.
LEGACY_ANSWERS = {
    is_churn: flask_json_bytes({"Prediction": label_of(is_churn)}) for is_churn in (False, True)
}


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


async def legacy_customer_batch(predictor: ChurnPredictor, upload: Path, *, max_rows: int) -> bytes:
    """`POST /v1/customerbatch`: {CustomerId: "Churn" | "Not Churn"} for a saved CSV upload."""
    answers = await anyio.to_thread.run_sync(
        functools.partial(score_legacy_file, predictor, upload, max_rows=max_rows)
    )
    return await anyio.to_thread.run_sync(flask_json_bytes, answers)


@dataclass(frozen=True)
class ResultsFile:
    """`/v2/predict-file`'s answer: the results, written to `path` (which the caller
    deletes once sent), in `output_format`, and what they account for."""

    path: Path
    output_format: OutputFormat
    summary: FileSummary


async def predict_file(
    predictor: ChurnPredictor, upload: Path, output_format: OutputFormat, *, max_rows: int
) -> ResultsFile:
    """`POST /v2/predict-file`: every row of a saved CSV upload, scored or rejected with
    reasons, in the format the request chose."""
    descriptor, name = tempfile.mkstemp(prefix="churn-results-", suffix=f".{output_format}")
    os.close(descriptor)
    out = Path(name)
    try:
        summary = await anyio.to_thread.run_sync(
            functools.partial(score_file, predictor, upload, out, output_format, max_rows=max_rows)
        )
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return ResultsFile(out, output_format, summary)
