"""The churn Bento service: loads the verified model once per worker and delegates.

Routes: the old Flask contract (`/v1/customer`, `/v1/customerbatch`) and `GET /v2/model`
come from `churn.http.legacy_app`, mounted at the root; `/v2/predict` (adaptive
batching), `/v2/predict-file` and `/v2/explain` are BentoML APIs below. Configuration
comes only from the environment (see `churn.settings`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Literal, cast

import bentoml
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from churn.api import Explanation, Prediction
from churn.batch import score_file
from churn.errors import ChurnError
from churn.guard import Guard, configure_logging
from churn.http import error_response, legacy_app
from churn.predictor import ChurnPredictor
from churn.schema import Customer
from churn.settings import Settings
from churn.store import load_stored, verify_stored

settings = Settings.from_environment()
configure_logging(settings.log_level)
# Checked here, where `bentoml serve` and `bentoml build` import this file, so that a
# missing or altered model stops them with its message instead of failing every worker.
verify_stored(settings.model_tag)


def _current_predictor() -> ChurnPredictor:
    service: ChurnService = bentoml.get_current_service()
    return service.predictor


@bentoml.service(
    name="churn",
    workers=settings.workers,
    traffic={"timeout": settings.timeout_seconds},
    # churn.guard writes the access log (with request ids and no customer data).
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(legacy_app(_current_predictor, max_rows=settings.max_rows), path="/")
class ChurnService:
    model = bentoml.models.BentoModel(settings.model_tag)

    def __init__(self) -> None:
        # Raises ModelIntegrityError, and the worker does not start, unless the stored
        # pickle still has the digest recorded when it was imported.
        self.predictor = ChurnPredictor(load_stored(self.model))

    @bentoml.api(
        route="/v2/predict",
        batchable=True,
        max_batch_size=settings.max_batch_size,
        max_latency_ms=settings.max_latency_ms,
    )
    async def predict(self, customers: list[Customer]) -> list[Prediction]:
        """Churn probability, label, risk band and model version for each customer.

        Send `{"customers": [customer, ...]}`; single customers from many clients are
        batched together adaptively.
        """
        # A batch costs well under a millisecond: scoring on the event loop is cheaper
        # than handing every batch to a worker thread.
        return self.predictor.predict(customers)

    @bentoml.api(route="/v2/explain")
    def explain(self, customer: Customer) -> Explanation:
        """The factors that push this customer's churn risk up or down (exact TreeSHAP)."""
        return self.predictor.explain(customer)

    @bentoml.api(route="/v2/predict-file")
    def predict_file(self, file: Path, format: Literal["csv", "json"] = "csv") -> Path:
        """Score a CSV upload (multipart field `file`), accounting for every row.

        Valid rows are scored, invalid rows come back with their row number and reasons;
        rows in = rows scored + rows rejected. CSV by default (summary in the
        X-Rows-In, X-Rows-Scored and X-Rows-Rejected headers), JSON with `format=json`.
        """
        descriptor, name = tempfile.mkstemp(prefix="churn-results-", suffix=f".{format}")
        os.close(descriptor)
        out = Path(name)
        try:
            summary = score_file(self.predictor, file, out, format, max_rows=settings.max_rows)
        except ChurnError as error:
            out.unlink(missing_ok=True)
            return _as_response(error_response(error))
        headers = {
            "X-Rows-In": str(summary.rows_in),
            "X-Rows-Scored": str(summary.rows_scored),
            "X-Rows-Rejected": str(summary.rows_rejected),
            "X-Predicted-Churn": str(summary.predicted_churn),
            "X-Model-Version": summary.model_version,
        }
        return _as_response(
            FileResponse(
                out,
                media_type="text/csv" if format == "csv" else "application/json",
                filename=f"churn-predictions.{format}",
                headers=headers,
                background=BackgroundTask(out.unlink, missing_ok=True),
            )
        )


# The decorators have made ChurnService a bentoml Service object.
cast(Any, ChurnService).add_asgi_middleware(
    Guard,
    api_keys=settings.api_keys,
    max_body_bytes=settings.max_upload_bytes,
    metrics_require_key=settings.metrics_require_key,
)


def _as_response(response: Response) -> Path:
    # BentoML sends a Response returned by an API as it is; the annotation above stays
    # `Path` so that the OpenAPI page documents a file download.
    return response  # type: ignore[return-value]
