"""The loaded model as the service uses it: predictions, explanations, model info."""

from __future__ import annotations

from collections.abc import Sequence

from churn.model.store import LoadedModel
from churn.record.answers import Explanation, ModelInfo, Prediction, RiskBands
from churn.record.outcome import ANSWER_DIGITS, label_of
from churn.record.schema import Customer, CustomerFeatures
from churn.scoring.scorer import Scorer


class ChurnPredictor:
    def __init__(self, loaded: LoadedModel, scorer: Scorer | None = None) -> None:
        self.metadata = loaded.metadata
        self.tag = loaded.tag
        self.version = loaded.metadata.model_version
        # The service passes one that also counts each customer into the live drift
        # profile (churn.monitoring.live); jobs and tools score plainly.
        self.scorer = scorer or Scorer(
            loaded.tree, loaded.metadata.threshold, label_rule=loaded.metadata.label_rule
        )

    def predict(self, customers: Sequence[Customer]) -> list[Prediction]:
        probabilities = self.scorer.score_customers(customers)
        churn = self.scorer.labels(probabilities)
        bands = self.scorer.bands(probabilities)
        return [
            Prediction(
                CustomerId=customer.CustomerId,
                churn_probability=round(float(probability), ANSWER_DIGITS),
                prediction=label_of(bool(is_churn)),
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
            base_value=round(base, ANSWER_DIGITS),
            factors=factors,
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
            label_rule=meta.label_rule,
            risk_bands=RiskBands(
                medium_from=self.scorer.threshold, high_from=self.scorer.high_risk
            ),
            metrics={}
            if meta.metrics is None
            else {k: float(v) for k, v in meta.metrics.model_dump().items() if k != "holdout_rows"},
            features=meta.features,
            feature_schema=meta.feature_schema,
            customer_json_schema=Customer.model_json_schema(),
            libraries=meta.libraries,
            origin=meta.origin(),
            provenance=meta.provenance,
        )
