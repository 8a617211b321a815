"""The churn Bento service: loads the verified model once per worker and delegates.

Every route's answer is decided in `churn.serving.routes`. `/v2/predict` and
`/v2/explain` are BentoML APIs below; the old Flask contract (`/v1/customer`,
`/v1/customerbatch`), `/v2/predict-file` and `GET /v2/model` are
`churn.serving.app.service_app`, mounted at the root. Every request passes
`churn.serving.edge.Guard` first; `churn.serving.fastpath.FastPath` then dispatches
`/v1/customer` and `/v2/predict` itself (CHURN_FAST_PATH). Configuration comes only from
the environment (`churn.settings`).
"""

from __future__ import annotations

import functools
import gc
import os
from typing import Annotated, Any, TypeVar, cast

import bentoml

# Imported once: `bentoml.<name>` goes through BentoML's lazy module loader on each use.
from bentoml import get_current_service
from bentoml.validators import ContentType
from starlette.responses import Response
from starlette.routing import Route

from churn.model.store import load_stored, verify_stored
from churn.monitoring.live import scorer_for
from churn.record.answers import Explanation, Prediction
from churn.record.errors import ChurnError
from churn.record.schema import Customer
from churn.scoring.predictor import ChurnPredictor
from churn.serving import routes
from churn.serving.app import service_app
from churn.serving.batching import Batcher
from churn.serving.bento import PredictionsAnswer
from churn.serving.bentoml_internals import replace_bentoml_metrics, replace_bentoml_timeout
from churn.serving.edge import Guard
from churn.serving.fastpath import FastPath
from churn.serving.logs import configure_logging, flush_logs
from churn.serving.negotiation import JSON
from churn.serving.openapi import openapi_document
from churn.serving.responses import error_response
from churn.settings import ServiceSettings

T = TypeVar("T")
# Naming the media type spares BentoML from building the answer's JSON schema again on
# every response to find it out (a tenth of a /v2/predict request's time, profiled).
JSONOf = Annotated[T, ContentType("application/json")]
GC_YOUNG_THRESHOLD = 10_000

settings = ServiceSettings.from_environment()
configure_logging(settings.log_level, settings.log_flush_ms)
# Checked here, where `bentoml serve` and `bentoml build` import this file, so that a
# missing or altered model stops them with its message instead of failing every worker.
verify_stored(settings.model_tag)
# Before BentoML builds its app in the worker: its own time limit leaks (see there).
replace_bentoml_timeout()
# BentoML records an OpenTelemetry span for every request, and more for every message
# it sends and receives, even with no exporter configured, where they go nowhere: a
# fifth of a /v1/customer request's CPU (benchmarks/README.md). OpenTelemetry's own
# switch turns them off unless the operator has set it (README: "Tracing").
os.environ.setdefault("OTEL_SDK_DISABLED", "true")


# ChurnService, below, is a bentoml Service object once its decorators have run; these
# helpers are called only after that.
def _api_paths() -> frozenset[str]:
    return frozenset(api.route for api in cast(Any, ChurnService).apis.values())


def _api_names() -> list[str]:
    return list(cast(Any, ChurnService).apis)


@functools.cache
def _openapi() -> dict[str, Any]:
    return openapi_document(
        cast(Any, ChurnService).openapi_spec.asdict(),
        _api_paths(),
        model_version=_current_predictor().version,
    )


def _current_predictor() -> ChurnPredictor:
    service: ChurnService = get_current_service()
    return service.predictor


def _current_batcher() -> Batcher:
    service: ChurnService = get_current_service()
    return service.batcher


root_app = service_app(_current_predictor, max_rows=settings.max_rows, openapi=_openapi)


@bentoml.service(
    name="churn",
    workers=settings.workers,
    traffic={"timeout": settings.timeout_seconds},
    # churn.serving.edge writes the access log (with request ids and no customer data).
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(root_app, path="/")
class ChurnService:
    model = bentoml.models.BentoModel(settings.model_tag)

    def __init__(self) -> None:
        # Raises ModelIntegrityError, and the worker does not start, unless the stored
        # booster file still has the digest recorded when it was saved.
        loaded = load_stored(self.model)
        self.predictor = ChurnPredictor(
            loaded,
            # Model health: each customer scored is counted into the live drift profile.
            scorer=scorer_for(
                loaded.tree,
                loaded.metadata,
                profiling=settings.drift_profiling,
                window_minutes=settings.drift_window_minutes,
                bulk_threads=settings.bulk_threads,
            ),
        )
        # The worker's one batching queue for /v2/predict, the API's and the fast path's.
        self.batcher = Batcher(
            self.predictor.predict,
            max_batch_size=settings.max_batch_size,
            max_latency_ms=settings.max_latency_ms,
        )
        # BentoML looks each API method up on this instance twice per request, and every
        # lookup builds the method's wrappers anew (`APIMethod.__get__`: a new signature,
        # functools.wraps): a tenth of a `/v2/predict` request's CPU (benchmarks/README.md).
        # Its server calls only the wrapper's `.local`, which does the same every time, so
        # they are built once and stored on the instance, where the lookup finds them
        # first. (A call from this class to one of its own API methods would now run
        # directly, not through BentoML's self-proxy; nothing here makes one.)
        for name in _api_names():
            setattr(self, name, getattr(self, name))
        # All that is loaded by now lives as long as the worker. Frozen, it is no longer
        # walked by every full garbage collection, which under load came every second or
        # two (a sixth of a worker's CPU, measured; benchmarks/README.md).
        gc.collect()
        gc.freeze()
        # Requests free what they allocate by reference counting, but the ones in flight
        # (waiting for a batch, or for their client) hold it meanwhile: at 700 net
        # allocations the collector ran every few requests to find nothing, 23 µs of a
        # /v2/predict request at 64 clients, 6 of a /v1/customer one at 16, and none at
        # 10,000 (gc.callbacks timings, benchmarks/README.md).
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    @bentoml.on_shutdown
    def write_waiting_logs(self) -> None:
        """Write the access lines still waiting for their batch (churn.serving.logs)."""
        flush_logs()

    # Not BentoML's `batchable`: its dispatcher holds single requests for a wait it
    # learns, and bulk requests teach it a long one (churn/serving/batching.py).
    @bentoml.api(route="/v2/predict", output_spec=PredictionsAnswer)
    async def predict(self, customers: list[Customer]) -> list[Prediction] | Response:
        """Churn probability, label, risk band and model version for each customer.

        Send `{"customers": [customer, ...]}`; single customers from many clients are
        batched together while the service is busy.
        """
        try:
            return Response(await routes.predict(self.batcher, customers), media_type=JSON)
        except ChurnError as error:
            # BentoML would answer an exception of ours with a 500.
            return error_response(error)

    @bentoml.api(route="/v2/explain")
    def explain(self, customer: Customer) -> JSONOf[Explanation]:
        """The factors that push this customer's churn risk up or down (exact TreeSHAP)."""
        return routes.explain(self.predictor, customer)


# Metrics labelled with these routes and "unmatched", never a path as sent, and no
# refused request counted (bentoml_internals).
replace_bentoml_metrics(
    _api_paths() | {route.path for route in root_app.routes if isinstance(route, Route)}
)
cast(Any, ChurnService).add_asgi_middleware(
    Guard,
    api_keys=settings.api_keys,
    max_body_bytes=settings.max_upload_bytes,
    metrics_require_key=settings.metrics_require_key,
    json_only_paths=_api_paths(),
    keepalive_requests=settings.keepalive_requests,
)
if settings.fast_path:
    # Behind the guard, so that keys, limits and the access log apply to it as well.
    cast(Any, ChurnService).add_asgi_middleware(
        FastPath,
        predictor=_current_predictor,
        batcher=_current_batcher,
        predict_input=cast(Any, ChurnService).apis["predict"].input_spec,
        # What BentoML's API path names itself with, so the answers match byte for byte.
        server_header=f"BentoML Service/{cast(Any, ChurnService).name}",
    )
