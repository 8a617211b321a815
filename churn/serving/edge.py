"""The ASGI layer in front of every route: request ids, API keys, body limits, access log.

One pure-ASGI middleware, so that it costs microseconds per request:
- Every request gets an id (a well-formed `X-Request-ID` from the caller, or a new
  one), returned in the `X-Request-ID` response header and written in the access log.
- With `CHURN_API_KEYS` set, every route except the health probes (and `/metrics`
  unless `CHURN_METRICS_REQUIRE_KEY=true`) and the API documentation needs
  `Authorization: Bearer <key>`; keys are compared in constant time and never logged.
- A body larger than `CHURN_MAX_UPLOAD_MB` is refused with 413 before it is read, from
  its Content-Length (the server holds the client to it). A body sent without one
  (chunked) is refused with 411, because its size could only be learnt by reading it.
- One access log line per request: id, method, route, status, latency. No query
  string, body, header, customer value or key is ever logged, and a path that could
  break the line (a decoded %0A) is written percent-encoded.
- An unknown route (404) or method (405) is answered in the service's error shape,
  naming the path and the methods it takes; the routers answer them in plain text or
  FastAPI's `{"detail"}`.
- Repeated slashes in the path are merged (`//v1/customer` is `/v1/customer`) before
  anything behind the guard reads it, in `path` and `raw_path` alike: the old
  notebook joins its root URL, which ends in `/`, with `"/v1/customer"`, and the old
  Flask app answered it. Nothing else in the path is rewritten (`merged_slashes`).
  BentoML's layers in front of the guard (metrics, tracing) see the path as sent.
- Keep-alive connections are recycled: each answer closes its connection with
  probability 1 / `CHURN_KEEPALIVE_REQUESTS`, as nginx's `keepalive_requests` does. The
  workers share one listening socket and the first to wake accepts a whole burst of
  new connections, so a client with a fixed pool (a load balancer, a batch job) would
  otherwise pin every connection to one worker and leave the other cores idle
  (measured: 16 connections, one worker busy, the other idle). A reconnect lands on
  whichever worker is free, so the load spreads within seconds.

`RequestTimeout` takes the place of BentoML's own time-limit middleware; see its
docstring for why.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import re
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from churn.record.errors import (
    ChurnError,
    LengthRequired,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TimedOut,
    Unauthorized,
    UnsupportedMediaType,
)
from churn.serving.routes import error_response, validation_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

ACCESS_LOG = logging.getLogger("churn.access")
PROBE_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/", "/docs.json", "/schema.json"})
OPEN_PREFIXES = ("/static_content/", "/assets/")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ROUTING_STATUSES = frozenset({NotFound.status_code, MethodNotAllowed.status_code})
_PATH_CHARS = 200
_SLASHES = re.compile("//+")
_RAW_SLASHES = re.compile(rb"//+")


class Guard:
    def __init__(
        self,
        app: App,
        *,
        api_keys: tuple[str, ...] = (),
        max_body_bytes: int,
        metrics_require_key: bool = False,
        json_only_paths: frozenset[str] = frozenset(),
        keepalive_requests: int = 100,
    ) -> None:
        self.app = app
        self.keys = tuple(key.encode() for key in api_keys)
        self.max_body_bytes = max_body_bytes
        self.open_paths = OPEN_PATHS if metrics_require_key else OPEN_PATHS | {"/metrics"}
        # BentoML picks its parser from the Content-Type and answers 500 when a JSON API
        # is sent a form; these routes take JSON only, and say so with a 415.
        self.json_only_paths = json_only_paths
        self.close_chance = 1 / keepalive_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope = merged_slashes(scope)
        headers = dict(scope.get("headers") or [])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex[:16]
        status: int | None = None
        routing_answer: Message | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                # Not a secret: a load-spreading coin, so the fast PRNG is right.
                if random.random() < self.close_chance:  # noqa: S311
                    headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        # Two closures, not one that calls itself: a closure that names itself holds a
        # reference cycle, and every request's scope and messages would then wait for
        # the garbage collector (measured: /livez 20 µs slower, tests/test_guard.py).
        async def send_in_our_shape(message: Message) -> None:
            nonlocal routing_answer
            if routing_answer is None:
                if message["type"] == "http.response.start" and (
                    message["status"] in _ROUTING_STATUSES
                ):
                    routing_answer = message
                    return
                await send_with_id(message)
            elif not message.get("more_body"):
                # The routers' own words (plain text, or FastAPI's {"detail"}) are
                # dropped with their body, and answered in our shape instead.
                await _send_error(send_with_id, _routing_error(scope, routing_answer))

        try:
            refusal = self._refusal(scope["path"], headers)
            if refusal is not None:
                await _send_error(send_with_id, refusal)
            elif scope["path"] in self.json_only_paths:
                await self.app(scope, receive, _json_answers_whole(send_in_our_shape))
            else:
                await self.app(scope, receive, send_in_our_shape)
        except asyncio.CancelledError:
            if status is None:
                # Cancelled before answering: the request time limit, which answers 504.
                status = TimedOut.status_code
            raise
        finally:
            # Probes arrive every few seconds from every orchestrator: DEBUG, not INFO.
            ACCESS_LOG.log(
                logging.DEBUG if scope["path"] in PROBE_PATHS else logging.INFO,
                "request_id=%s method=%s route=%s status=%d latency_ms=%.2f",
                request_id,
                scope.get("method", ""),
                _loggable(scope["path"]),
                # No answer and no cancellation: the app failed, and the server answers 500.
                500 if status is None else status,
                (time.perf_counter() - started) * 1000,
            )

    def _refusal(self, path: str, headers: dict[bytes, bytes]) -> ChurnError | None:
        """Why the request is refused before it reaches the app, if it is."""
        try:
            self._authorize(path, headers)
            self._check_length(headers)
            self._check_content_type(path, headers)
        except ChurnError as error:
            # Without its traceback: frames that reach it again would make a cycle.
            return error.with_traceback(None)
        return None

    def _authorize(self, path: str, headers: dict[bytes, bytes]) -> None:
        if not self.keys or path in self.open_paths or path.startswith(OPEN_PREFIXES):
            return
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            raise Unauthorized("This service needs an API key: send 'Authorization: Bearer <key>'.")
        # Compare with every key, always, so that timing does not tell which one is near.
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(token.strip(), key)
        if not matched:
            raise Unauthorized("The API key is not valid.")

    def _check_content_type(self, path: str, headers: dict[bytes, bytes]) -> None:
        if path not in self.json_only_paths:
            return
        media_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip()
        if media_type.lower() != b"application/json":
            raise UnsupportedMediaType(
                f"{path} takes a JSON body (Content-Type: application/json)."
            )

    def _check_length(self, headers: dict[bytes, bytes]) -> None:
        declared = headers.get(b"content-length")
        if declared is None:
            if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                raise LengthRequired("Send the body with a Content-Length header.")
            return
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            megabytes = self.max_body_bytes / (1 << 20)
            raise PayloadTooLarge(
                f"The request body is larger than {megabytes:g} MB "
                "(CHURN_MAX_UPLOAD_MB); split the file or ask for a higher limit."
            )


class RequestTimeout:
    """Answers 504 when no answer has started within `timeout` seconds.

    The same contract as BentoML's `TimeoutMiddleware` (bentoml 1.4,
    `bentoml/_internal/server/http/traffic.py`), which puts it around every route when
    `traffic.timeout` is set, but that one never cancels the timer it starts with
    `loop.call_later`. Each request's timer then holds the request's context, its
    OpenTelemetry span and futures, for the whole timeout: after 30 s of load a worker
    held 31,819 finished requests' spans, and Python's full garbage collections walking
    them took about half its time (benchmarks/README.md). This one cancels its timer as
    soon as the answer starts.
    """

    def __init__(self, app: App, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()

        def expire() -> None:
            if not started.done():
                started.set_exception(TimeoutError)

        def mark_started(_: object = None) -> None:
            if not started.done():
                started.set_result(None)

        timer = loop.call_later(self.timeout, expire)

        async def send_and_mark(message: Message) -> None:
            mark_started()
            await send(message)

        handling = asyncio.ensure_future(self.app(scope, receive, send_and_mark))
        # An app that fails before answering must not leave us waiting for the timer.
        handling.add_done_callback(mark_started)
        try:
            await started
        except asyncio.CancelledError:
            handling.cancel()
            raise
        except TimeoutError:
            if handling.cancel():
                await _send_error(
                    send,
                    TimedOut(
                        f"No answer within {self.timeout:g} seconds (CHURN_TIMEOUT_SECONDS); "
                        "send fewer rows at a time, or ask for a longer limit."
                    ),
                )
                return
        finally:
            timer.cancel()
        await handling


def replace_bentoml_timeout() -> None:
    """Make BentoML build `RequestTimeout` where it would build its `TimeoutMiddleware`.

    BentoML imports the class by name from its module each time it builds a server app,
    so replacing the module's attribute before the app is built is enough.
    """
    from bentoml._internal.server.http import traffic

    traffic.TimeoutMiddleware = RequestTimeout  # type: ignore[misc,assignment]


def merged_slashes(scope: Scope) -> Scope:
    """The scope with each run of slashes in its path merged into one.

    Merged in `raw_path` (the bytes the client sent), and `path` decoded from the result
    as the server decodes it, so the two still agree. Only slashes sent as slashes are
    merged: an encoded one (`%2F`) is data, and a trailing slash, a dot segment
    (`/./`, `/../`) or a letter's case are left as sent. A copy, as ASGI asks of a
    middleware that changes the scope; most requests have no repeated slash and pass
    as they are.
    """
    raw: bytes | None = scope.get("raw_path")
    if raw is None:  # optional in ASGI; then the decoded path is all there is
        path: str = scope["path"]
        return {**scope, "path": _SLASHES.sub("/", path)} if "//" in path else scope
    if b"//" not in raw:
        return scope
    merged = _RAW_SLASHES.sub(b"/", raw)
    return {**scope, "raw_path": merged, "path": urllib.parse.unquote(merged.decode("latin-1"))}


def _json_answers_whole(send: Send) -> Send:
    """The answers of BentoML's JSON APIs, sent whole, and its schema errors as ours.

    BentoML sends a JSON answer as a start, the body, and an empty last part, with no
    Content-Length: the server then sends it chunked, and every layer around the guard
    (tracing, metrics, time limit) handles three messages for one small answer. The body
    is one piece already; held and sent with its length it takes two. (`/v2/predict`'s
    answer, `churn.serving.routes.PredictionsAnswer`, already comes whole with its length; its
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
            await _send_error(send, error)
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
        (detail for detail in answer["detail"] if isinstance(detail, dict)), "a JSON request"
    )


def _routing_error(scope: Scope, answer: Message) -> ChurnError:
    path = _shortened(scope["path"])
    if answer["status"] == MethodNotAllowed.status_code:
        allowed = dict(answer.get("headers", [])).get(b"allow", b"").decode("latin-1")
        return MethodNotAllowed(
            f"{path} does not take {scope.get('method', '')}; it takes {allowed}.", allowed
        )
    return NotFound(
        f"There is no route {path}. The routes, and what each takes, are listed on the API "
        "documentation page at / (OpenAPI document: /docs.json)."
    )


def _shortened(path: str) -> str:
    return path if len(path) <= _PATH_CHARS else path[:_PATH_CHARS] + "..."


def _loggable(path: str) -> str:
    """The path as one log field: the server has already decoded %0A into a line break,
    and a path with one would write a forged line into the access log."""
    if path.isprintable() and " " not in path and len(path) <= _PATH_CHARS:
        return path
    return urllib.parse.quote(_shortened(path), safe="/.-_~:@!$&'()*+,;=")


async def _send_error(send: Send, error: ChurnError) -> None:
    """The answer `error_response` gives, sent from below the routes."""
    response = error_response(error)
    headers = list(response.raw_headers)
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
