"""The churn Bento service (placeholder until the service issue lands)."""

from __future__ import annotations

import bentoml

from churn.store import load_model

churn_model = bentoml.models.BentoModel("churn_model:latest")


@bentoml.service(http={"port": 3000})
class ChurnService:
    model_ref = churn_model

    def __init__(self) -> None:
        self.model = load_model(str(self.model_ref.tag))

    @bentoml.api(route="/v2/model")
    def model_info(self) -> dict[str, object]:
        return self.model.metadata.model_dump(mode="json")
