"""Everything this project takes from BentoML's private internals, and why: one module.

BentoML 1.4 offers no public way to do either of these. `tests/serving/
test_bentoml_internals.py` checks each assumption against the installed BentoML and
names this module when an upgrade breaks one.

- The request time limit. `traffic.timeout` must be positive (BentoML's config schema),
  so BentoML always wraps every route in its `TimeoutMiddleware`, which never cancels
  the timer it starts: each request's context and spans stay alive for the whole
  timeout (benchmarks/README.md; still so in 1.4.39, bentoml/BentoML#5246, #5642).
  BentoML looks the class up by name in its module each time it builds a server app,
  so ours, which cancels its timer, takes its place there.
- The model store of one process (tests and tools that use a throw-away store):
  BentoML reads `BENTOML_HOME` once, at import.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from churn.serving.timeout import RequestTimeout

TRAFFIC_MODULE = "bentoml._internal.server.http.traffic"


def replace_bentoml_timeout() -> None:
    """Make BentoML build `RequestTimeout` where it would build its `TimeoutMiddleware`."""
    from bentoml._internal.server.http import traffic

    traffic.TimeoutMiddleware = RequestTimeout  # type: ignore[misc,assignment]


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
