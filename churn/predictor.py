"""The loaded model as the service uses it: predictions, explanations, model info."""

from __future__ import annotations

from collections.abc import Sequence

from churn.api import Explanation, Factor, ModelInfo, Prediction, RiskBands
from churn.monitoring.live import scorer_for
from churn.schema import Customer, CustomerFeatures
from churn.store import LoadedModel

_DIGITS = 6


class ChurnPredictor:
    def __init__(self, loaded: LoadedModel) -> None:
        self.metadata = loaded.metadata
        self.tag = loaded.tag
        self.version = loaded.metadata.model_version
        # Model health: every customer scored is counted into the live drift profile.
        self.scorer = scorer_for(loaded.pipeline, loaded.metadata)

    def predict(self, customers: Sequence[Customer]) -> list[Prediction]:
        probabilities = self.scorer.score_customers(customers)
        churn = self.scorer.labels(probabilities)
        bands = self.scorer.bands(probabilities)
        return [
            Prediction(
                CustomerId=customer.CustomerId,
                churn_probability=round(float(probability), _DIGITS),
                prediction="churn" if is_churn else "not churn",
                risk_band=band,
                model_version=self.version,
            )
            for customer, probability, is_churn, band in zip(
                customers, probabilities, churn, bands, strict=True
            )
        ]

    def is_churn(self, customer: CustomerFeatures) -> bool:
        return bool(self.scorer.labels(self.scorer.score_customers([customer]))[0])

    def explain(self, customer: Customer) -> Explanation:
        base, factors = self.scorer.explain(customer)
        return Explanation(
            prediction=self.predict([customer])[0],
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
