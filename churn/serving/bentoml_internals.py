"""Everything this project takes from BentoML's private internals, and from those of
prometheus_client, which BentoML writes its metrics with, and why: one module.

Neither library offers a public way to do any of these. `tests/serving/
test_bentoml_internals.py` checks each assumption against the installed versions and
names this module when an upgrade breaks one.

- The request time limit. `traffic.timeout` must be positive (BentoML's config schema),
  so BentoML always wraps every route in its `TimeoutMiddleware`, which never cancels
  the timer it starts: each request's context and spans stay alive for the whole
  timeout (benchmarks/README.md; still so in 1.4.39, bentoml/BentoML#5246, #5642).
  BentoML looks the class up by name in its module each time it builds a server app,
  so ours, which cancels its timer, takes its place there.
- The HTTP metrics' labels. BentoML's `RunnerTrafficMetricsMiddleware`, outside every
  middleware of ours, labels each request with the exact path sent, before the API key
  is checked: 200 keyless requests to made-up paths added 3,800 series, 8.5 KB of
  metrics file each, kept until restart (issue 27). `RouteMetrics` takes its place, the
  same way as the time limit: the same metrics, labelled with the service's routes and
  `unmatched` for any other path, and a request refused at the edge (no key, a route
  or method that does not exist, a body refused unread) counted nowhere, so that it
  creates no series and changes no value. Its setup (the metric objects) is BentoML's own.
- A full disk under the metrics directory. prometheus_client keeps each process's
  metrics in a file it maps into memory and grows by `truncate`, which allocates no
  disk: the first write to a page the file system has no room for kills the process
  with SIGBUS (a full 2 MB tmpfs: every worker restarting every 10 s, nothing in the
  log, issue 27). `AllocatedDict` allocates a file's blocks (`posix_fallocate`) before
  it maps or grows them, and where that fails it keeps the process's values in memory
  instead: they are missing from /metrics, and the answers go on.
- Each API method's wrapper. BentoML's `APIMethod.__get__` builds the method's wrapper
  anew (`inspect.signature`, a new `Signature`, `functools.wraps`) on every lookup, and
  its server looks each API method up on the instance twice per request: a tenth of a
  `/v2/predict` request's CPU through BentoML's API path (benchmarks/README.md). It is
  a non-data descriptor, so a wrapper stored on the instance is found first; the
  server calls only the wrapper's `.local`, the same wrapper. (A call from the class to
  one of its own API methods would then run directly, not through BentoML's
  self-proxy; the service makes none.)
- The model store of one process (tests and tools that use a throw-away store):
  BentoML reads `BENTOML_HOME` once, at import.
"""

from __future__ import annotations

import functools
import logging
import mmap
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from timeit import default_timer
from typing import Any

from churn.serving.asgi import Message, Receive, Scope, Send
from churn.serving.paths import merged_slashes
from churn.serving.timeout import RequestTimeout

TRAFFIC_MODULE = "bentoml._internal.server.http.traffic"
INSTRUMENTS_MODULE = "bentoml._internal.server.http.instruments"
VALUES_MODULE = "prometheus_client.values"
UNMATCHED = "unmatched"
# BentoML's own routes, besides the service's APIs and mounted app.
BENTOML_ROUTES = frozenset(
    {"/", "/docs.json", "/schema.json", "/livez", "/readyz", "/healthz", "/metrics"}
)
# Answered at the edge before any route (churn.serving.admission, and the routers'
# 404 and 405): not counted.
REFUSED = frozenset({401, 404, 405, 411, 413, 415})
LOG = logging.getLogger("churn.metrics")


def replace_bentoml_timeout() -> None:
    """Make BentoML build `RequestTimeout` where it would build its `TimeoutMiddleware`."""
    from bentoml._internal.server.http import traffic

    traffic.TimeoutMiddleware = RequestTimeout  # type: ignore[misc,assignment]


def build_api_methods_once(instance: object, apis: Iterable[str]) -> None:
    """Store each API method's wrapper on the service's instance, built once."""
    for name in apis:
        setattr(instance, name, getattr(instance, name))


def replace_bentoml_metrics(routes: Iterable[str]) -> None:
    """Make BentoML label its HTTP metrics with `routes` (and BentoML's own) and
    `unmatched`, count no refused request, and survive a full metrics disk."""
    from bentoml._internal.server.http import instruments
    from prometheus_client import values

    metrics = route_metrics_class()
    metrics.routes = BENTOML_ROUTES | frozenset(routes)
    instruments.RunnerTrafficMetricsMiddleware = metrics  # type: ignore[misc]
    values.MmapedDict = allocated_dict_class()  # type: ignore[attr-defined]


@functools.cache
def route_metrics_class() -> Any:
    from bentoml._internal.context import server_context
    from bentoml._internal.server.http import instruments

    # Typed as Any: BentoML's class is untyped.
    base: Any = instruments.RunnerTrafficMetricsMiddleware

    class RouteMetrics(base):  # type: ignore[misc]
        """BentoML's HTTP metrics, labelled from a closed set (module docstring)."""

        routes: frozenset[str] = BENTOML_ROUTES

        def _setup(self, *args: Any, **kwargs: Any) -> None:
            super()._setup(*args, **kwargs)
            # Every series a request may add to, made now: none is made by a request.
            for endpoint in [*self.routes, UNMATCHED]:
                self.metrics_request_in_progress.labels(**self._labels(endpoint))

        @staticmethod
        def _labels(endpoint: str) -> dict[str, str]:
            return {
                "endpoint": endpoint,
                "service_name": server_context.bento_name,
                "service_version": server_context.bento_version,
                "runner_name": str(server_context.service_name),
            }

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if not self._is_setup:
                self._setup()
            if scope["type"] != "http" or scope["path"] == "/metrics":
                await self.app(scope, receive, send)
                return
            path = merged_slashes(scope)["path"]
            labels = self._labels(path if path in self.routes else UNMATCHED)
            started = default_timer()
            status = 0

            async def counted(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                elif message["type"] == "http.response.body" and not message.get("more_body"):
                    self._count(labels, status, path, default_timer() - started)
                await send(message)

            with self.metrics_request_in_progress.labels(**labels).track_inprogress():
                await self.app(scope, receive, counted)

        def _count(self, labels: dict[str, str], status: int, path: str, took: float) -> None:
            if status in REFUSED:
                return
            self.metrics_request_total.labels(**labels, http_response_code=status).inc()
            self.metrics_request_duration.labels(**labels, http_response_code=status).observe(
                max(took, 0)
            )
            if not path.startswith(tuple(self.skip_paths)):
                self.metrics_last_request_timestamp.labels(
                    service_name=labels["service_name"],
                    service_version=labels["service_version"],
                    runner_name=labels["runner_name"],
                ).set_to_current_time()

    return RouteMetrics


@functools.cache
def allocated_dict_class() -> Any:
    from prometheus_client import mmap_dict

    # Typed as Any: prometheus_client's class is untyped.
    base: Any = mmap_dict.MmapedDict

    class AllocatedDict(base):  # type: ignore[misc]
        """prometheus_client's metrics file, with its blocks allocated before they are
        written, or this process's values in memory where they cannot be."""

        def __init__(self, filename: str, read_mode: bool = False) -> None:
            self._in_memory = False
            if read_mode:
                super().__init__(filename, read_mode)
                return
            try:
                _allocate_file(filename)
                super().__init__(filename)
            except OSError as error:
                _lost(filename, error)
                self._start_in_memory(filename)

        def _start_in_memory(self, filename: str) -> None:
            self._in_memory = True
            self._f: Any = None  # nothing to close
            self._fname = filename
            self._capacity = INITIAL_SIZE
            self._m = mmap.mmap(-1, self._capacity)
            self._positions: dict[str, int] = {}
            self._used = 8
            self._m[0:4] = self._used.to_bytes(4, "little", signed=True)

        def _init_value(self, key: str) -> None:
            needed = self._used + _entry_size(key)
            if needed > self._capacity:
                capacity = self._capacity
                while needed > capacity:
                    capacity *= 2
                if not self._in_memory:
                    try:
                        os.posix_fallocate(self._f.fileno(), 0, capacity)
                    except OSError as error:
                        _lost(self._fname, error)
                        self._in_memory = True
                if self._in_memory:
                    grown = mmap.mmap(-1, capacity)
                    grown[: self._used] = self._m[: self._used]
                    self._m, self._capacity = grown, capacity
            super()._init_value(key)

    return AllocatedDict


INITIAL_SIZE = 1 << 16  # prometheus_client's first size of a metrics file


def _allocate_file(filename: str) -> None:
    handle = os.open(filename, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.posix_fallocate(handle, 0, max(os.fstat(handle).st_size, INITIAL_SIZE))
    finally:
        os.close(handle)


def _entry_size(key: str) -> int:
    """The bytes prometheus_client's `_init_value` appends for `key`."""
    encoded = len(key.encode("utf-8"))
    return 4 + encoded + (8 - (encoded + 4) % 8) + 16


def _lost(filename: str, error: OSError) -> None:
    LOG.warning(
        "metrics file %s cannot grow (%s): this process's metrics are kept in memory and "
        "missing from /metrics; answers are not affected",
        filename, error.strerror or error,
    )  # fmt: skip


@contextmanager
def model_store_at(models: Path) -> Iterator[None]:
    """This process's BentoML model store is the one in `models` while inside."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models.model import ModelStore

    previous = BentoMLContainer.model_store.get()
    BentoMLContainer.model_store.set(ModelStore(models))
    try:
        yield
    finally:
        BentoMLContainer.model_store.set(previous)
