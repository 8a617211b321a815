"""A fast dispatch of the two busiest routes, right behind the guard, ahead of the routers.

`POST /v1/customer` (every existing client) and `POST /v2/predict` carry most of the
traffic. Through BentoML's router, its API path and FastAPI's layers, one of these
requests cost the server 450-475 µs of CPU on 2 cores, and 150-200 µs of that is the
layers themselves (benchmarks/README.md, "The fast path"). `FastPath` reads the body and
calls the same function the router would (`churn.serving.routes`), which decides the
answer, errors included; it decides nothing itself. `/v2/predict`'s body is read by
BentoML's own input model of the API, so both accept exactly the same bodies, and a
body that breaks it gets the error the edge makes of BentoML's (`serving.reshape`).

Everything in front of it still applies: the guard (API keys, body limits, request id,
access log), BentoML's metrics and tracing middlewares, and the request time limit.
`CHURN_FAST_PATH=false` turns it off and every request goes through the routers;
tests/service/test_fastpath_answers_as_routes.py checks that both ways answer alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ValidationError

from churn.record.errors import ChurnError
from churn.record.schema import Customer
from churn.scoring.predictor import ChurnPredictor
from churn.serving import routes
from churn.serving.asgi import App, Message, Receive, Scope, Send
from churn.serving.batching import Batcher
from churn.serving.responses import API_BODY, error_response, validation_error

_JSON_HEADER = (b"content-type", b"application/json")
Answer = Callable[[bytes], Awaitable[bytes]]


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
        body = await _read_body(receive)
        if body is None:
            return  # the client left: nobody to answer
        try:
            content = await answer(body)
        except ChurnError as error:
            await error_response(error.with_traceback(None))(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*headers, (b"content-length", b"%d" % len(content))],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _customer(self, body: bytes) -> bytes:
        return routes.legacy_customer(self.predictor(), body)

    async def _predict(self, body: bytes) -> bytes:
        try:
            # As BentoML reads it: an empty body is an empty object.
            customers: list[Customer] = self.predict_input.model_validate_json(
                body or b"{}"
            ).customers  # type: ignore[attr-defined]
        except ValidationError as error:
            details = error.errors(include_url=False, include_input=False)
            raise validation_error(details, API_BODY) from None
        return await routes.predict(self.batcher(), customers)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (the guard has bounded its size), or None if the client left."""
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)
