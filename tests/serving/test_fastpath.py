"""What the fast dispatch answers, and what it hands on (in-process ASGI calls).

Over HTTP, tests/service/test_fastpath_answers_as_routes.py checks its answers against
the routes'.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, NoReturn, cast

import pytest
from pydantic import BaseModel

from churn.record.answers import Prediction
from churn.record.schema import Customer
from churn.serving.asgi import Message
from churn.serving.batching import Batcher
from churn.serving.fastpath import FastPath
from tests.factories import EXAMPLE_CUSTOMER


class PredictInput(BaseModel):
    customers: list[Customer]


class RouteBehind:
    """The app behind the fast path: reads the whole request as a route does, answers 299."""

    def __init__(self) -> None:
        self.received: list[Message] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"route"})


def never_scores(*_: object) -> NoReturn:
    pytest.fail("the fast path scored a request it should have refused or handed on")


class NeverScores:
    is_churn = staticmethod(never_scores)


def call(
    messages: list[Message], *, method: str = "POST", path: str = "/v1/customer"
) -> tuple[RouteBehind, list[Message]]:
    behind = RouteBehind()
    batcher = Batcher(never_scores, max_batch_size=8, max_latency_ms=1000)
    fast = FastPath(
        behind,
        predictor=cast(Any, NeverScores),
        batcher=lambda: batcher,
        predict_input=PredictInput,
        server_header="test",
    )
    incoming = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(fast(scope, receive, send))
    return behind, sent


def body(chunk: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": chunk, "more_body": more}


@pytest.mark.parametrize(("path", "field"), [("/v1/customer", "Age"), ("/v2/predict", "customers")])
def test_a_body_that_does_not_fit_is_refused_in_the_error_shape_unscored(
    path: str, field: str
) -> None:
    request = [body(b'{"Age": ', more=True), body(b'"old"}')]

    behind, sent = call(request, path=path)

    assert behind.received == []
    assert sent[0]["status"] == 422
    answer = json.loads(sent[1]["body"])
    assert answer["error"] == "invalid_input"
    assert field in {problem["field"] for problem in answer["problems"]}


def test_a_client_that_leaves_mid_body_gets_no_answer_and_nothing_is_scored() -> None:
    request = [body(json.dumps(EXAMPLE_CUSTOMER)[:20].encode(), more=True)]

    behind, sent = call(request)

    assert behind.received == []
    assert sent == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/customer"), ("POST", "/v1/customerbatch"), ("POST", "/v2/explain")],
)
def test_other_requests_pass_untouched(method: str, path: str) -> None:
    request = [body(json.dumps(EXAMPLE_CUSTOMER).encode())]

    behind, sent = call(request, method=method, path=path)

    assert behind.received == request
    assert sent[0]["status"] == 299


def test_an_empty_customer_list_needs_no_batch() -> None:
    behind, sent = call([body(b'{"customers": []}')], path="/v2/predict")

    assert behind.received == []
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"[]"


class SlowModel:
    """Scores in 200 ms a batch, blocking the event loop as a heavy model would."""

    def predict(self, customers: list[Customer]) -> list[Prediction]:
        time.sleep(0.2)
        return [
            Prediction(
                CustomerId=None,
                churn_probability=0.5,
                prediction="churn",
                risk_band="high",
                model_version="test",
            )
            for _ in customers
        ]


def test_requests_past_the_latency_budget_are_shed_with_a_503_in_the_error_shape() -> None:
    # The first request is scored at once; the next two, queued meanwhile, form the next
    # batch; the rest have waited 200 ms, past the budget, by the time theirs is formed.
    batcher = Batcher(SlowModel().predict, max_batch_size=2, max_latency_ms=100)
    fast = FastPath(
        RouteBehind(),
        predictor=cast(Any, NeverScores),
        batcher=lambda: batcher,
        predict_input=PredictInput,
        server_header="test",
    )
    request = json.dumps({"customers": [EXAMPLE_CUSTOMER]}).encode()

    async def one() -> list[Message]:
        sent: list[Message] = []

        async def receive() -> Message:
            return body(request)

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v2/predict", "headers": []}
        await fast(scope, receive, send)
        return sent

    async def many() -> list[list[Message]]:
        return await asyncio.gather(*(one() for _ in range(20)))

    answers = asyncio.run(many())

    statuses = [sent[0]["status"] for sent in answers]
    assert statuses == [200] * 3 + [503] * 17
    shed = next(sent for sent in answers if sent[0]["status"] == 503)
    assert (b"retry-after", b"1") in shed[0]["headers"]
    assert json.loads(shed[1]["body"])["error"] == "overloaded"
