"""The churn Bento service: loads the verified model once per worker, declares its APIs
and delegates each to `churn.serving.routes`, which decides every answer.

`/v2/predict` and `/v2/explain` are BentoML APIs below. The old Flask contract
(`/v1/customer`, `/v1/customerbatch`), `/v2/predict-file`, `GET /v2/model` and the
model-health routes are `churn.serving.app`, mounted at the root. What the service does
beyond BentoML's examples (the edge, the fast dispatch, and what was measured to
matter) is in `churn.serving.bento`, which says why. Configuration comes only from the
environment (`churn.settings`).
"""

from __future__ import annotations

import bentoml

# Imported once: `bentoml.<name>` goes through BentoML's lazy module loader on each use.
from bentoml import get_current_service
from starlette.responses import Response

from churn.model.store import load_stored
from churn.monitoring.live import scorer_for
from churn.record.answers import Explanation, Prediction
from churn.record.schema import Customer
from churn.scoring.predictor import ChurnPredictor
from churn.serving import bento, routes
from churn.serving.app import service_app
from churn.serving.batching import Batcher
from churn.serving.logs import flush_logs
from churn.settings import ServiceSettings

settings = ServiceSettings.from_environment()
bento.prepare_process(settings)


def _current_predictor() -> ChurnPredictor:
    service: ChurnService = get_current_service()
    return service.predictor


def _current_batcher() -> Batcher:
    service: ChurnService = get_current_service()
    return service.batcher


root_app = service_app(
    _current_predictor,
    max_rows=settings.max_rows,
    openapi=lambda: bento.openapi(ChurnService, _current_predictor()),
)


@bentoml.service(
    name="churn",
    workers=settings.workers,
    traffic={"timeout": settings.timeout_seconds},
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
        bento.settle_worker(self, ChurnService)

    @bentoml.on_shutdown
    def write_waiting_logs(self) -> None:
        """Write the access lines still waiting for their batch (churn.serving.logs)."""
        flush_logs()

    @bentoml.api(route="/v2/predict", output_spec=bento.PredictionsAnswer)
    async def predict(self, customers: list[Customer]) -> list[Prediction] | Response:
        """Churn probability, label, risk band and model version for each customer.

        Send `{"customers": [customer, ...]}`; single customers from many clients are
        batched together while the service is busy.
        """
        return await bento.json_answer(routes.predict(self.batcher, customers))

    @bentoml.api(route="/v2/explain")
    def explain(self, customer: Customer) -> bento.JSONOf[Explanation]:
        """The factors that push this customer's churn risk up or down (exact TreeSHAP)."""
        return routes.explain(self.predictor, customer)


bento.add_edge(
    ChurnService, root_app, settings, predictor=_current_predictor, batcher=_current_batcher
)
