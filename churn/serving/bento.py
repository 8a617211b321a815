"""What the churn Bento service does beyond BentoML's examples, and why: one place.

service.py reads as BentoML's examples do: load the model once per worker, declare the
APIs, delegate each to `churn.serving.routes`. Everything else it needs is here, and
each thing stays only for a reason measured or required (benchmarks/README.md holds
the runs):

- The edge and the fast dispatch (`add_edge`). Every request passes
  `churn.serving.edge.Guard` first (API keys, body limits, request ids, the access log,
  the service's error shape); `churn.serving.fastpath.FastPath` then answers
  `/v1/customer` and `/v2/predict` without BentoML's router and API path, which cost
  such a request 150-200 µs of the server's CPU ("The fast path"). CHURN_FAST_PATH=false
  turns it off.
- HTTP metrics labelled from a closed set, no refused request counted, and a full
  metrics disk costing metrics only (issue 27); and a request time limit that cancels
  its timer, where BentoML's kept every request alive for the whole timeout. Both
  replace BentoML's private classes: `churn.serving.bentoml_internals` says how, and its
  test says when an upgrade breaks them.
- OpenTelemetry off unless the operator turns it on (`prepare_process`): BentoML
  records spans for every request even with no exporter, where they go nowhere, a fifth
  of a `/v1/customer` request's CPU (README: "Tracing").
- The model verified when service.py is imported (`prepare_process`), where `bentoml
  serve` and `bentoml build` import it: a missing or altered model stops them with its
  message instead of failing every worker.
- Each API method's wrapper built once per worker (`settle_worker`): BentoML builds it
  anew on every lookup, a tenth of a `/v2/predict` request's CPU through BentoML's API
  path when measured ("Each API method's wrapper built once per worker"). Since the
  fast path that is `/v2/explain`, and `/v2/predict` with CHURN_FAST_PATH=false, where
  cProfile still puts 6% of the route's time in it (2026-12-06: 0.33 of 5.47 s over
  4,000 requests). It relies on how BentoML's `APIMethod` works, so it is in
  `bentoml_internals`.
- The start-up heap frozen and the young generation's threshold at 10,000
  (`settle_worker`): full collections walked the loaded model every second or two (a
  sixth of a worker's CPU), and requests in flight set off young collections that
  found nothing, 20-26 µs of a batched `/v2/predict` request ("The garbage collector and
  requests in flight"; tests/service/test_worker.py counts them).
- `/v2/predict` answers through `PredictionsAnswer` and `/v2/explain` names its media
  type (`JSONOf`): without them BentoML validates and dumps a list answer twice and
  streams it in three messages, and builds the answer's JSON schema again on every
  response to learn its media type (each about a tenth of a request's time).
- Not BentoML's `batchable`: its dispatcher holds single requests for a wait it learns,
  and bulk requests teach it a long one (`churn.serving.batching`).
- BentoML's access log off: the guard writes one without customer data or keys.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, ClassVar, TypeVar

import bentoml
from bentoml.validators import ContentType
from pydantic import RootModel
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from churn.model.store import verify_stored
from churn.record.answers import Prediction
from churn.record.errors import ChurnError
from churn.scoring.predictor import ChurnPredictor
from churn.serving.batching import Batcher
from churn.serving.bentoml_internals import (
    build_api_methods_once,
    replace_bentoml_metrics,
    replace_bentoml_timeout,
)
from churn.serving.edge import Guard
from churn.serving.fastpath import FastPath
from churn.serving.logs import configure_logging
from churn.serving.negotiation import JSON
from churn.serving.openapi import openapi_document
from churn.serving.responses import error_response
from churn.settings import ServiceSettings

T = TypeVar("T")
JSONOf = Annotated[T, ContentType(JSON)]
GC_YOUNG_THRESHOLD = 10_000
# service.py's class, once BentoML's decorators have made it a `bentoml.Service`
# (mypy sees the class the decorators were given).
Service = Any


# BentoML's lazy top-level module gives mypy no type for `bentoml.IODescriptor`.
class PredictionsAnswer(bentoml.IODescriptor, RootModel[list[Prediction]]):  # type: ignore[misc]
    """One prediction per customer sent, in the order sent."""

    media_type: ClassVar[str | None] = JSON


def prepare_process(settings: ServiceSettings) -> None:
    """Logging, the stored model checked, BentoML's time limit replaced before it builds
    its app in the worker, and tracing off unless the operator has set it."""
    configure_logging(settings.log_level, settings.log_flush_ms)
    verify_stored(settings.model_tag)
    replace_bentoml_timeout()
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")


def settle_worker(instance: object, service: Service) -> None:
    """Called last in the service's `__init__`: all that is loaded by now lives as long
    as the worker."""
    build_api_methods_once(instance, service.apis)
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


async def json_answer(answer: Awaitable[bytes]) -> Response:
    """A BentoML API's answer: the route's JSON bytes, or its error in the service's shape
    (BentoML would answer an exception of ours with a 500)."""
    try:
        return Response(await answer, media_type=JSON)
    except ChurnError as error:
        return error_response(error)


def openapi(service: Service, predictor: ChurnPredictor) -> dict[str, Any]:
    """The service's OpenAPI document: BentoML's, with the mounted app's routes."""
    return openapi_document(
        service.openapi_spec.asdict(), _api_paths(service), model_version=predictor.version
    )


def add_edge(
    service: Service,
    root_app: Starlette,
    settings: ServiceSettings,
    *,
    predictor: Callable[[], ChurnPredictor],
    batcher: Callable[[], Batcher],
) -> None:
    """The guard in front of every route, and the fast dispatch behind it."""
    # Metrics labelled with these routes and "unmatched", never a path as sent.
    app_paths = {route.path for route in root_app.routes if isinstance(route, Route)}
    replace_bentoml_metrics(_api_paths(service) | app_paths)
    service.add_asgi_middleware(
        Guard,
        api_keys=settings.api_keys,
        max_body_bytes=settings.max_upload_bytes,
        metrics_require_key=settings.metrics_require_key,
        json_only_paths=_api_paths(service),
        keepalive_requests=settings.keepalive_requests,
    )
    if settings.fast_path:
        # Behind the guard, so that keys, limits and the access log apply to it as well.
        service.add_asgi_middleware(
            FastPath,
            predictor=predictor,
            batcher=batcher,
            predict_input=service.apis["predict"].input_spec,
            # What BentoML's API path names itself with, so the answers match byte for byte.
            server_header=f"BentoML Service/{service.name}",
        )


def _api_paths(service: Service) -> frozenset[str]:
    return frozenset(api.route for api in service.apis.values())
