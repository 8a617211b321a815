"""The published OpenAPI document: BentoML's, made to state the service's contract."""

from __future__ import annotations

import copy
import importlib.metadata
from typing import Any

from churn.record.answers import ErrorBody


def error_answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give, all in one shape."""
    return {status: {"model": ErrorBody, "description": _WORDS[status]} for status in statuses}


def upload_body(extra: dict[str, Any] | None = None) -> dict[str, Any]:
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
