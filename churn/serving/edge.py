"""The ASGI layer in front of every route: it imports no route, no scoring, no model.

One pure-ASGI middleware, so that it costs microseconds per request. It composes the
edge's parts, each in its own module (admission, paths, reshape, responses):
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

The request time limit is `churn.serving.timeout.RequestTimeout`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid

from churn.serving.admission import Admission
from churn.serving.asgi import App, Message, Receive, Scope, Send
from churn.serving.errors import TimedOut
from churn.serving.paths import loggable, merged_slashes
from churn.serving.reshape import ROUTING_STATUSES, json_answers_whole, routing_error
from churn.serving.responses import send_error

ACCESS_LOG = logging.getLogger("churn.access")
PROBE_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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
        self.admission = Admission(
            api_keys=api_keys,
            max_body_bytes=max_body_bytes,
            metrics_require_key=metrics_require_key,
            json_only_paths=json_only_paths,
        )
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
        # the garbage collector (measured: /livez 20 µs slower, tests/serving/test_edge.py).
        async def send_in_our_shape(message: Message) -> None:
            nonlocal routing_answer
            if routing_answer is None:
                if message["type"] == "http.response.start" and (
                    message["status"] in ROUTING_STATUSES
                ):
                    routing_answer = message
                    return
                await send_with_id(message)
            elif not message.get("more_body"):
                # The routers' own words (plain text, or FastAPI's {"detail"}) are
                # dropped with their body, and answered in our shape instead.
                await send_error(send_with_id, routing_error(scope, routing_answer))

        try:
            refusal = self.admission.refusal(scope["path"], headers)
            if refusal is not None:
                await send_error(send_with_id, refusal)
            elif scope["path"] in self.admission.json_only_paths:
                await self.app(scope, receive, json_answers_whole(send_in_our_shape))
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
                loggable(scope["path"]),
                # No answer and no cancellation: the app failed, and the server answers 500.
                500 if status is None else status,
                (time.perf_counter() - started) * 1000,
            )
