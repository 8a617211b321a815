"""The request time limit that takes the place of BentoML's, on a real event loop."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from typing import Any

import pytest

from churn.serving.asgi import Message, Receive, Scope, Send
from churn.serving.edge import Guard
from churn.serving.timeout import RequestTimeout


async def quick(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def call(app: Any, timeout: float) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v2/predict", "headers": []}
    await RequestTimeout(app, timeout)(scope, receive, send)
    return sent


def pending_timers() -> int:
    return sum(
        1 for o in gc.get_objects() if isinstance(o, asyncio.TimerHandle) and not o.cancelled()
    )


def test_answers_pass_untouched_and_leave_no_timer() -> None:
    async def many() -> tuple[list[list[Message]], int]:
        before = pending_timers()
        answers = [await call(quick, timeout=3600) for _ in range(200)]
        return answers, pending_timers() - before

    answers, left = asyncio.run(many())
    assert all(
        [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        for sent in answers
    )
    # BentoML's own middleware leaves one timer per request, each holding the
    # request's context, for the whole timeout.
    assert left == 0


def test_a_slow_answer_is_a_504_in_our_shape_and_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def run() -> list[Message]:
        sent = await call(slow, timeout=0.05)
        await asyncio.wait_for(cancelled.wait(), 5)
        return sent

    start, body = asyncio.run(run())
    assert start["status"] == 504
    assert (b"content-type", b"application/json") in start["headers"]
    error = json.loads(body["body"])
    assert error["error"] == "timeout"
    assert "CHURN_TIMEOUT_SECONDS" in error["message"]


def test_an_answer_under_way_is_not_cut_off() -> None:
    async def starts_then_streams(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.2)
        await send({"type": "http.response.body", "body": b"late"})

    sent = asyncio.run(call(starts_then_streams, timeout=0.05))
    assert [m.get("status") for m in sent] == [200, None]
    assert sent[1]["body"] == b"late"


def test_a_failure_before_answering_is_raised_at_once() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("broken before answering")

    # Raised within the test's own limit of 5 s, not when the hour-long timer fires.
    with pytest.raises(RuntimeError, match="broken before answering"):
        asyncio.run(asyncio.wait_for(call(broken, timeout=3600), 5))


def test_the_access_log_records_the_504() -> None:
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(60)

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    access = logging.getLogger("churn.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        (start, _) = asyncio.run(call(Guard(slow, max_body_bytes=1 << 20), timeout=0.05))
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert start["status"] == 504
    (line,) = lines
    assert "route=/v2/predict status=504" in line
