"""The service's error shape, decided here and only here.

Every error any layer answers (the edge, the routes, the fast dispatch, BentoML's APIs)
is a `churn.record.errors.ChurnError` turned into JSON by `error_response`: its status
code, `{"error", "message", "problems"}` and headers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import JSONResponse

from churn.record.errors import BadRequest, ChurnError, InvalidInput, Problem
from churn.record.schema import SPECS_BY_NAME
from churn.serving.asgi import Send


def error_response(error: ChurnError) -> JSONResponse:
    return JSONResponse(error.as_json(), status_code=error.status_code, headers=error.headers())


# What BentoML's JSON APIs expect, in their schema errors: the fast dispatch and the edge
# (which reshapes BentoML's own) say the same.
API_BODY = "a JSON request"


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


async def send_error(send: Send, error: ChurnError) -> None:
    """The answer `error_response` gives, sent from below the routes."""
    response = error_response(error)
    headers = list(response.raw_headers)
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
