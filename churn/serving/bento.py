"""What the churn Bento service declares beyond BentoML's examples, and why."""

from __future__ import annotations

from typing import ClassVar

import bentoml
from pydantic import RootModel

from churn.record.answers import Prediction
from churn.serving.negotiation import JSON


# `/v2/predict`'s answer as the OpenAPI document states it. The API method itself answers
# with `routes.predict`'s bytes: serialized once and sent with their length, where
# BentoML's own path for a list validates it again, dumps it twice and sends it in three
# messages (a tenth of a request's time, benchmarks/README.md). BentoML's lazy top-level
# module gives mypy no type for `bentoml.IODescriptor`.
class PredictionsAnswer(bentoml.IODescriptor, RootModel[list[Prediction]]):  # type: ignore[misc]
    """One prediction per customer sent, in the order sent."""

    media_type: ClassVar[str | None] = JSON
