"""The two busiest routes answered right behind the guard, ahead of the routers.

`POST /v1/customer` (every existing client) and `POST /v2/predict` carry most of the
traffic. Through BentoML's router, its API path and FastAPI's layers, one of these
requests cost the server 450-475 µs of CPU on 2 cores, and 150-200 µs of that is the
layers themselves (benchmarks/README.md, "The fast path"). `FastPath` answers a request
whose body fits the route's schema with the same scoring and the same answer bytes, and
hands every other request on, its body replayed, to the route behind it, so that each
error still has one source: the route that documents it. Its one answer of its own is
the 503 of `churn.errors.Overloaded`, when adaptive batching sheds a request.

Everything in front of it still applies: the guard (API keys, body limits, request id,
access log), BentoML's metrics and tracing middlewares, and the request time limit.
`/v2/predict` is still batched adaptively, by BentoML's own dispatcher with the API's
`max_batch_size` and `max_latency_ms`; only BentoML's per-request wrapping is skipped.
The dispatcher is not in BentoML's public API (`bentoml._internal`): uv.lock pins the
version it was written against, and tests/service/test_fastpath.py checks that
batches form. `CHURN_FAST_PATH=false` turns the fast path off and every request goes
through the routes; the same tests check that both ways answer alike.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, cast

from bentoml._internal.marshal.dispatcher import CorkDispatcher
from pydantic import BaseModel, ValidationError

from churn.api import Prediction
from churn.errors import ChurnError, Overloaded
from churn.guard import App, Message, Receive, Scope, Send
from churn.http import LEGACY_ANSWERS, error_response, parse_customer, predictions_json
from churn.predictor import ChurnPredictor
from churn.schema import Customer

if TYPE_CHECKING:
    from prometheus_client import Histogram

_JSON_HEADER = (b"content-type", b"application/json")
Answer = Callable[[bytes], Awaitable[bytes | None]]


@functools.cache
def batch_sizes() -> Histogram:
    # Imported here, once the worker runs: prometheus_client settles on single- or
    # multi-process mode when first imported, and a BentoML worker sets
    # PROMETHEUS_MULTIPROC_DIR only after importing service.py (bentoml/metrics.py).
    import prometheus_client

    # Scoring a batch takes well under a millisecond, so a batch rarely holds more than
    # a worker's concurrent clients; the buckets resolve that range.
    return prometheus_client.Histogram(
        "churn_predict_batch_size",
        "Customers scored in one call by /v2/predict's adaptive batching.",
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, float("inf")),
    )


class FastPath:
    def __init__(
        self,
        app: App,
        *,
        predictor: Callable[[], ChurnPredictor],
        predict_input: type[BaseModel],
        max_batch_size: int,
        max_latency_ms: int,
        server_header: str,
    ) -> None:
        self.app = app
        self.predictor = predictor
        self.batch_sizes = batch_sizes()
        # BentoML's own input model of `/v2/predict`: the fast path accepts exactly what
        # the API accepts.
        self.predict_input = predict_input
        dispatcher: CorkDispatcher[list[Customer], list[Prediction]] = CorkDispatcher(
            max_latency_in_ms=max_latency_ms,
            max_batch_size=max_batch_size,
            fallback=_shed,
            get_batch_size=len,
        )
        # Typed as maybe None; it returns the batch's answer or raises (the fallback too).
        self.batched = cast(
            Callable[[list[Customer]], Awaitable[list[Prediction]]],
            dispatcher(self._score_batches),
        )
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
        if not customers:
            return predictions_json([])
        return predictions_json(await self.batched(customers))

    async def _score_batches(self, batches: Sequence[list[Customer]]) -> list[list[Prediction]]:
        customers = [customer for batch in batches for customer in batch]
        self.batch_sizes.observe(len(customers))
        predictions = self.predictor().predict(customers)
        answers, start = [], 0
        for batch in batches:
            answers.append(predictions[start : start + len(batch)])
            start += len(batch)
        return answers


def _shed() -> NoReturn:
    raise Overloaded(
        "The service is too busy to answer within its latency budget "
        "(CHURN_MAX_LATENCY_MS); try again shortly."
    )


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
