"""The request time limit: a 504 when no answer has started in time."""

from __future__ import annotations

import asyncio

from churn.serving.asgi import App, Message, Receive, Scope, Send
from churn.serving.errors import TimedOut
from churn.serving.responses import send_error


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
                await send_error(
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
