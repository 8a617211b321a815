"""When churn.serving.batching scores a request: at once, with the requests queued beside it, or
not at all. In-process, on a real event loop; no clock is read by the assertions.

Over HTTP, tests/service/test_batching_over_http.py checks the same through /metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from churn.record.answers import Prediction
from churn.record.schema import Customer
from churn.serving.batching import Batcher
from tests.factories import make_customer


class Model:
    """Records the customers of each scoring call; fails on a customer aged 99."""

    def __init__(self) -> None:
        self.calls: list[list[str | None]] = []

    def predict(self, customers: list[Customer]) -> list[Prediction]:
        self.calls.append([c.CustomerId for c in customers])
        if any(c.Age == 99 for c in customers):
            raise RuntimeError("the model failed")
        return [
            Prediction(
                CustomerId=c.CustomerId,
                churn_probability=0.5,
                prediction="churn",
                risk_band="high",
                model_version="test",
            )
            for c in customers
        ]


def customers(*ids: str, **overrides: Any) -> list[Customer]:
    return [Customer.model_validate(make_customer(CustomerId=i, **overrides)) for i in ids]


def ids(answer: list[Prediction]) -> list[str | None]:
    return [p.CustomerId for p in answer]


def finished_without_waiting(call: Coroutine[Any, Any, list[Prediction]]) -> list[Prediction]:
    """The answer of a call that completes without ever giving up the event loop."""
    with pytest.raises(StopIteration) as done:
        call.send(None)
    answer: list[Prediction] = done.value.value
    return answer


def make(max_batch_size: int = 8) -> tuple[Model, Batcher]:
    model = Model()
    return model, Batcher(model.predict, max_batch_size=max_batch_size, max_latency_ms=10_000)


def test_a_request_to_an_idle_batcher_is_scored_at_once_and_alone() -> None:
    model, batcher = make()

    async def scenario() -> list[Prediction]:
        return finished_without_waiting(batcher(customers("a")))

    assert ids(asyncio.run(scenario())) == ["a"]
    assert model.calls == [["a"]]


def test_requests_that_arrive_while_it_is_busy_are_scored_together() -> None:
    model, batcher = make()

    async def scenario() -> list[list[Prediction]]:
        return await asyncio.gather(*(batcher(customers(str(n))) for n in range(6)))

    answers = asyncio.run(scenario())

    assert [ids(a) for a in answers] == [[str(n)] for n in range(6)]
    # The first found it idle; the other five arrived in the same turn of the loop.
    assert model.calls == [["0"], ["1", "2", "3", "4", "5"]]


def test_it_is_idle_again_as_soon_as_a_turn_brings_nothing() -> None:
    model, batcher = make()

    async def scenario() -> list[Prediction]:
        await asyncio.gather(*(batcher(customers(str(n))) for n in range(6)))
        return finished_without_waiting(batcher(customers("after")))

    assert ids(asyncio.run(scenario())) == ["after"]
    assert model.calls[-1] == ["after"]


def test_a_batch_holds_whole_requests_up_to_max_batch_size() -> None:
    model, batcher = make(max_batch_size=4)

    async def scenario() -> list[list[Prediction]]:
        return await asyncio.gather(
            *[
                batcher(customers("first")),
                batcher(customers("a1", "a2", "a3")),
                batcher(customers("b1", "b2", "b3")),
                batcher(customers("c1")),
            ]
        )

    answers = asyncio.run(scenario())

    assert [ids(a) for a in answers] == [["first"], ["a1", "a2", "a3"], ["b1", "b2", "b3"], ["c1"]]
    assert model.calls == [["first"], ["a1", "a2", "a3"], ["b1", "b2", "b3", "c1"]]


def test_a_bulk_request_is_scored_at_once_as_sent_even_while_others_queue() -> None:
    model, batcher = make(max_batch_size=4)
    bulk = [f"bulk{n}" for n in range(10)]

    async def scenario() -> list[list[Prediction]]:
        return await asyncio.gather(
            *[
                batcher(customers("first")),
                batcher(customers("queued")),
                batcher(customers(*bulk)),
                batcher(customers("after")),
            ]
        )

    answers = asyncio.run(scenario())

    assert [ids(a) for a in answers] == [["first"], ["queued"], bulk, ["after"]]
    assert model.calls == [["first"], bulk, ["queued", "after"]]


def test_an_empty_list_needs_no_scoring() -> None:
    model, batcher = make()

    async def scenario() -> list[Prediction]:
        return finished_without_waiting(batcher([]))

    assert asyncio.run(scenario()) == []
    assert model.calls == []


def test_a_failed_batch_fails_each_of_its_requests_and_the_next_batch_is_scored() -> None:
    model, batcher = make()

    async def scenario() -> list[list[Prediction] | BaseException]:
        failed = await asyncio.gather(
            batcher(customers("first")),
            batcher(customers("x")),
            batcher(customers("doomed", Age=99)),
            return_exceptions=True,
        )
        return [*failed, await batcher(customers("later"))]

    first, x, doomed, later = asyncio.run(scenario())

    assert isinstance(x, RuntimeError)
    assert isinstance(doomed, RuntimeError)
    assert model.calls == [["first"], ["x", "doomed"], ["later"]]
    assert isinstance(first, list)
    assert isinstance(later, list)
    assert ids(later) == ["later"]


def test_a_request_cancelled_while_queued_is_not_scored() -> None:
    model, batcher = make()

    async def scenario() -> None:
        first = asyncio.ensure_future(batcher(customers("first")))
        gone = asyncio.ensure_future(batcher(customers("gone")))
        kept = asyncio.ensure_future(batcher(customers("kept")))
        await asyncio.sleep(0)  # all three have reached the batcher: two are queued
        gone.cancel()
        await asyncio.gather(first, kept)

    asyncio.run(scenario())

    assert model.calls == [["first"], ["kept"]]
