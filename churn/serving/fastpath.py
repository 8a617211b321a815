"""The two busiest routes answered right behind the guard, ahead of the routers.

`POST /v1/customer` (every existing client) and `POST /v2/predict` carry most of the
traffic. Through BentoML's router, its API path and FastAPI's layers, one of these
requests cost the server 450-475 µs of CPU on 2 cores, and 150-200 µs of that is the
layers themselves (benchmarks/README.md, "The fast path"). `FastPath` answers a request
whose body fits the route's schema with the same scoring and the same answer bytes, and
hands every other request on, its body replayed, to the route behind it, so that each
error still has one source: the route that documents it. Its one answer of its own is
the 503 of `churn.record.errors.Overloaded`, when batching sheds a request.

Everything in front of it still applies: the guard (API keys, body limits, request id,
access log), BentoML's metrics and tracing middlewares, and the request time limit.
`/v2/predict` goes through the worker's one `churn.serving.batching.Batcher`, the same one the
BentoML API uses; only BentoML's per-request wrapping is skipped.
`CHURN_FAST_PATH=false` turns the fast path off and every request goes through the
routes; tests/service/test_fastpath.py checks that both ways answer alike.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ValidationError

from churn.record.errors import ChurnError
from churn.record.schema import Customer
from churn.scoring.predictor import ChurnPredictor
from churn.serving.batching import Batcher
from churn.serving.edge import App, Message, Receive, Scope, Send
from churn.serving.routes import LEGACY_ANSWERS, error_response, parse_customer, predictions_json

_JSON_HEADER = (b"content-type", b"application/json")
Answer = Callable[[bytes], Awaitable[bytes | None]]


class FastPath:
    def __init__(
        self,
        app: App,
        *,
        predictor: Callable[[], ChurnPredictor],
        batcher: Callable[[], Batcher],
        predict_input: type[BaseModel],
        server_header: str,
    ) -> None:
        self.app = app
        self.predictor = predictor
        self.batcher = batcher
        # BentoML's own input model of `/v2/predict`: the fast path accepts exactly what
        # the API accepts.
        self.predict_input = predict_input
        # The headers each route's framework answer has: FastAPI adds none of its own to
        # `/v1/customer`; BentoML names itself on its APIs.
        self.routes: dict[str, tuple[Answer, list[tuple[bytes, bytes]]]] = {
            "/v1/customer": (self._customer, [_JSON_HEADER]),
            "/v2/predict": (self._predict, [_JSON_HEADER, (b"server", server_header.encode())]),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope.get("method") == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        answer, headers = route
        messages: list[Message] = []
        body = await _read_body(receive, messages)
        try:
            content = None if body is None else await answer(body)
        except ChurnError as error:
            await error_response(error.with_traceback(None))(scope, receive, send)
            return
        if content is None:
            await self.app(scope, _replaying(messages, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*headers, (b"content-length", b"%d" % len(content))],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _customer(self, body: bytes) -> bytes | None:
        try:
            features = parse_customer(body)
        except ChurnError:
            return None  # the route answers it, with the same error
        return LEGACY_ANSWERS[self.predictor().is_churn(features)]

    async def _predict(self, body: bytes) -> bytes | None:
        try:
            # As BentoML reads it: an empty body is an empty object.
            customers: list[Customer] = self.predict_input.model_validate_json(
                body or b"{}"
            ).customers  # type: ignore[attr-defined]
        except ValidationError:
            return None
        return predictions_json(await self.batcher()(customers))


async def _read_body(receive: Receive, messages: list[Message]) -> bytes | None:
    """The whole body (the guard has bounded its size), or None if the client left."""
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None
        if not message.get("more_body"):
            return b"".join(m.get("body", b"") for m in messages)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """`receive` for the route behind: the messages already read, then the live ones."""
    pending: collections.deque[Message] = collections.deque(messages)

    async def replay() -> Message:
        if pending:
            return pending.popleft()
        return await receive()

    return replay
