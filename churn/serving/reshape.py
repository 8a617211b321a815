"""Answers the routers write in their own words, re-sent in the service's error shape.

BentoML's APIs answer a schema error with 400 and `{"error", "detail"}`; Starlette's
router answers 404 and 405 in plain text, FastAPI's in `{"detail"}`.
"""

from __future__ import annotations

import json

from churn.record.errors import ChurnError
from churn.serving.asgi import Message, Scope, Send
from churn.serving.errors import MethodNotAllowed, NotFound
from churn.serving.paths import shortened
from churn.serving.responses import API_BODY, send_error, validation_error

ROUTING_STATUSES = frozenset({NotFound.status_code, MethodNotAllowed.status_code})


def json_answers_whole(send: Send) -> Send:
    """The answers of BentoML's JSON APIs, sent whole, and its schema errors as ours.

    BentoML sends a JSON answer as a start, the body, and an empty last part, with no
    Content-Length: the server then sends it chunked, and every layer around the guard
    (tracing, metrics, time limit) handles three messages for one small answer. The body
    is one piece already; held and sent with its length it takes two. (`/v2/predict`'s
    answer, `churn.serving.bento.PredictionsAnswer`, already comes whole with its length; its
    errors still pass here.)

    BentoML answers a body that breaks the schema with 400 and `{"error": "N validation
    errors for Input", "detail": [...]}`; the rest of the service answers 422 with
    `{"error": "invalid_input", "message", "problems"}`, each problem naming the field
    and what it allows. Such a 400 is re-sent in our shape.
    """
    held: Message | None = None
    chunks: list[bytes] = []

    async def send_whole(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            held = message
            return
        if held is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        error = _as_invalid_input(body) if held["status"] == 400 else None
        if error is not None:
            await send_error(send, error)
            return
        headers = [
            (name, value)
            for name, value in held.get("headers", [])
            if name.lower() not in (b"content-length", b"transfer-encoding")
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**held, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return send_whole


def _as_invalid_input(body: bytes) -> ChurnError | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("detail"), list):
        return None
    return validation_error(
        (detail for detail in answer["detail"] if isinstance(detail, dict)), API_BODY
    )


def routing_error(scope: Scope, answer: Message) -> ChurnError:
    path = shortened(scope["path"])
    if answer["status"] == MethodNotAllowed.status_code:
        allowed = dict(answer.get("headers", [])).get(b"allow", b"").decode("latin-1")
        return MethodNotAllowed(
            f"{path} does not take {scope.get('method', '')}; it takes {allowed}.", allowed
        )
    return NotFound(
        f"There is no route {path}. The routes, and what each takes, are listed on the API "
        "documentation page at / (OpenAPI document: /docs.json)."
    )
