"""The loaded model as the service uses it: predictions, explanations, model info."""

from __future__ import annotations

from collections.abc import Sequence

from churn.api import Explanation, Factor, ModelInfo, Prediction, RiskBands
from churn.schema import Customer, CustomerFeatures
from churn.scoring import Scorer
from churn.store import LoadedModel

_DIGITS = 6


class ChurnPredictor:
    def __init__(self, loaded: LoadedModel) -> None:
        self.metadata = loaded.metadata
        self.tag = loaded.tag
        self.version = loaded.metadata.model_version
        self.scorer = Scorer(loaded.pipeline, loaded.metadata.threshold)

    def predict(self, customers: Sequence[Customer]) -> list[Prediction]:
        probabilities = self.scorer.probabilities(self.scorer.matrix_of(customers))
        return [
            self._prediction(customer.CustomerId, float(probability))
            for customer, probability in zip(customers, probabilities, strict=True)
        ]

    def is_churn(self, customer: CustomerFeatures) -> bool:
        probability = self.scorer.probabilities(self.scorer.matrix_of([customer]))[0]
        return bool(probability >= self.scorer.threshold)

    def explain(self, customer: Customer) -> Explanation:
        base, factors = self.scorer.explain(customer)
        probability = float(self.scorer.probabilities(self.scorer.matrix_of([customer]))[0])
        return Explanation(
            prediction=self._prediction(customer.CustomerId, probability),
            base_value=round(base, _DIGITS),
            factors=[
                Factor(
                    feature=f.feature,
                    value=f.value,
                    contribution=f.contribution,
                    direction="up" if f.contribution > 0 else "down",
                )
                for f in factors
            ],
        )

    def info(self) -> ModelInfo:
        meta = self.metadata
        return ModelInfo(
            model_name=meta.model_name,
            model_tag=self.tag,
            model_version=meta.model_version,
            trained_at=meta.trained_at,
            threshold=meta.threshold,
            threshold_rule=meta.threshold_rule,
            risk_bands=RiskBands(
                medium_from=self.scorer.threshold, high_from=self.scorer.high_risk
            ),
            metrics={
                k: float(v) for k, v in meta.metrics.model_dump().items() if k != "holdout_rows"
            },
            features=meta.features,
            feature_schema=meta.feature_schema,
            customer_json_schema=Customer.model_json_schema(),
            libraries=meta.libraries,
        )

    def _prediction(self, customer_id: str | None, probability: float) -> Prediction:
        return Prediction(
            CustomerId=customer_id,
            churn_probability=round(probability, _DIGITS),
            prediction="churn" if probability >= self.scorer.threshold else "not churn",
            risk_band=self.scorer.band(probability),
            model_version=self.version,
        )
