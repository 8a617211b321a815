"""The guard on a real event loop, without a server: what a request leaves behind.

The routes themselves, API keys and the access log are tested through HTTP in
tests/service/test_guard.py.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from churn.serving.asgi import Message, Receive, Scope, Send
from churn.serving.edge import Guard
from churn.serving.paths import merged_slashes
from churn.serving.timeout import RequestTimeout

REQUESTS = 100


def answering(status: int) -> Guard:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"Not Found"})

    return Guard(app, max_body_bytes=10, json_only_paths=frozenset({"/v2/predict"}))


async def request(
    app: Guard | RequestTimeout, path: str, headers: list[tuple[bytes, bytes]]
) -> int:
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    await app(scope, receive, send)
    return statuses[0]


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("status", "path", "headers", "answered"),
    [
        (200, "/livez", [], 200),
        (200, "/v2/predict", [], 200),
        (404, "/nowhere", [], 404),  # re-sent in our shape
        (200, "/v1/customer", [(b"content-length", b"99")], 413),  # refused by the guard
    ],
)
def test_a_request_leaves_no_reference_cycle(
    collector_off: None,
    status: int,
    path: str,
    headers: list[tuple[bytes, bytes]],
    answered: int,
) -> None:
    # Without cycles, reference counting frees each request's scope, messages and
    # closures as it ends; with one, they wait for the collector, which then runs every
    # few dozen requests (20 µs a /livez request, measured).
    app = RequestTimeout(answering(status), timeout=60)

    async def requests() -> list[int]:
        return [await request(app, path, headers) for _ in range(REQUESTS)]

    assert set(asyncio.run(requests())) == {answered}
    assert gc.collect() == 0


@pytest.mark.parametrize(
    ("raw_path", "path", "merged_raw", "merged"),
    [
        (b"//v1/customer", "//v1/customer", b"/v1/customer", "/v1/customer"),
        (b"///v2//predict-file", "///v2//predict-file", b"/v2/predict-file", "/v2/predict-file"),
        (b"//", "//", b"/", "/"),
        # The decoded path follows the merged bytes: encoded characters stay decoded,
        # and an encoded slash is data, not a separator to merge.
        (b"//a%20b/%2F%2Fc", "//a b///c", b"/a%20b/%2F%2Fc", "/a b///c"),
        (None, "//v1//customer", None, "/v1/customer"),  # raw_path is optional in ASGI
    ],
)
def test_repeated_slashes_are_merged_in_path_and_raw_path(
    raw_path: bytes | None, path: str, merged_raw: bytes | None, merged: str
) -> None:
    scope: Scope = {"type": "http", "path": path, "raw_path": raw_path, "query_string": b"a=//"}
    result = merged_slashes(scope)
    assert (result["raw_path"], result["path"]) == (merged_raw, merged)
    assert result["query_string"] == b"a=//"
    assert scope["path"] == path  # a copy: the caller's scope is left as it was


@pytest.mark.parametrize("path", ["/v1/customer", "/v2/predict/", "/v2/./predict", "/"])
def test_a_path_without_repeated_slashes_passes_as_it_is(path: str) -> None:
    scope: Scope = {"type": "http", "path": path, "raw_path": path.encode()}
    assert merged_slashes(scope) is scope


def test_the_guard_routes_and_checks_the_merged_path() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = Guard(app, max_body_bytes=10, json_only_paths=frozenset({"/v2/predict"}))
    json_only = [(b"content-type", b"text/plain")]
    assert asyncio.run(request(guard, "//v1//customer", [])) == 200
    assert asyncio.run(request(guard, "//v2/predict", json_only)) == 415  # checked as /v2/predict
    assert seen == ["/v1/customer"]
