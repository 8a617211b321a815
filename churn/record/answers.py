"""The shapes of the service's answers: pydantic models at the HTTP edge.

Requests are `churn.record.schema.Customer`; these are what comes back. The client and the UI
read the same models, so a field renamed here is renamed everywhere.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from churn.record.outcome import BAND_RULE, Direction, Label, LabelRule, RiskBand
from churn.record.provenance import Provenance

# Served by churn.serving.health; /v2/model points to it.
MODEL_CARD_PATH = "/v2/model/card"
DriftStatus = Literal["ok", "warn", "drift", "insufficient"]


class Prediction(BaseModel):
    """One customer's churn risk."""

    CustomerId: str | None = Field(default=None, description="The id sent, if any.")
    churn_probability: float = Field(ge=0, le=1, description="Estimated probability of churn.")
    prediction: Label = Field(description="The label at the model's decision threshold.")
    risk_band: RiskBand = Field(description=BAND_RULE)
    model_version: str


class Factor(BaseModel):
    feature: str
    value: int | float | str
    contribution: float = Field(
        description="Effect on the log-odds of churn; positive pushes the risk up."
    )
    direction: Direction


class Explanation(BaseModel):
    """Exact TreeSHAP contributions: base_value + sum(contributions) = log-odds of churn."""

    prediction: Prediction
    base_value: float = Field(description="Log-odds of churn for an average customer.")
    factors: list[Factor] = Field(description="Every feature, largest effect first.")


class RiskBands(BaseModel):
    medium_from: float = Field(description="Probability at which a customer is flagged.")
    high_from: float


class ModelInfo(BaseModel):
    """What the service runs: the UI builds its form from `feature_schema`."""

    model_config = {"protected_namespaces": ()}

    model_name: str
    model_tag: str
    model_version: str
    trained_at: str | None = Field(description="When `churn train` made it; null if imported.")
    threshold: float
    threshold_rule: str
    label_rule: LabelRule = Field(
        default=">=",
        description='">=": churn at or above the threshold; ">": strictly above it, as '
        "scikit-learn's and XGBoost's predict() did for an imported model.",
    )
    risk_bands: RiskBands
    metrics: dict[str, float] = Field(
        description="Holdout metrics from training; empty for an imported model."
    )
    features: list[str]
    feature_schema: list[dict[str, Any]]
    customer_json_schema: dict[str, Any]
    libraries: dict[str, str]
    origin: str = Field(
        default="",
        description='Where the model came from, e.g. "trained here by churn train on X.csv" or '
        '"imported from X.joblib (scikit-learn 1.6.1, XGBoost 2.1.4); parity on 3,000 '
        'customers: 0 labels differ".',
    )
    provenance: Provenance | None = Field(
        default=None, description="For an imported model: its file, libraries and parity."
    )
    model_card: str = Field(
        default=MODEL_CARD_PATH,
        description=f"The model card: a web page; Markdown at {MODEL_CARD_PATH}.md.",
    )


class FileSummary(BaseModel):
    rows_in: int
    rows_scored: int
    rows_rejected: int
    predicted_churn: int
    duplicate_ids: int
    model_version: str


class ProblemBody(BaseModel):
    message: str
    field: str | None = None
    row: int | None = Field(default=None, description="1 = the first data row after the header.")
    allowed: str | None = None


class ErrorBody(BaseModel):
    """Every error this service writes itself has this shape."""

    error: str = Field(description="A stable code, e.g. invalid_input, bad_request.")
    message: str
    problems: list[ProblemBody] = Field(default_factory=list)
    problem_count: int | None = Field(
        default=None, description="How many problems there were; at most 100 are listed."
    )


class LegacyPrediction(BaseModel):
    Prediction: Label


class ScoredRow(BaseModel):
    row: int
    CustomerId: str | None
    churn_probability: float
    prediction: Label
    risk_band: RiskBand


class RejectedRow(BaseModel):
    row: int
    CustomerId: str | None
    errors: str


class FileResults(BaseModel):
    predictions: list[ScoredRow]
    rejected: list[RejectedRow]
    summary: FileSummary


# Model health: GET /v2/drift (churn.monitoring computes it) ---------------------------


class Thresholds(BaseModel):
    statistic: Literal["psi"] = "psi"
    warn: float = Field(description="PSI from which the status is warn.")
    drift: float = Field(description="PSI from which the status is drift.")
    min_customers: int = Field(description="Fewer customers in a window: status insufficient.")


class FeatureDrift(BaseModel):
    psi: float | None = Field(
        description="Population stability index; null under the minimum of customers."
    )
    status: DriftStatus
    bins: list[str] = Field(description="The bins fixed at training, in words.")
    reference: list[float] = Field(description="Share of the training customers in each bin.")
    current: list[float] | None = Field(
        description="Share of this window's customers in each bin (to 0.1%); null under "
        "the minimum of customers, where shares would show individuals."
    )


class WindowDrift(BaseModel):
    customers: int = Field(description="Customers scored in the window.")
    features: dict[str, FeatureDrift]
    score: FeatureDrift = Field(description="The model's churn probability.")
    drifted: list[str] = Field(description="Features (and 'score') whose status is drift.")

    def summary(self) -> dict[str, Any]:
        """PSI and status only."""
        return {
            "customers": self.customers,
            "features": {n: {"psi": f.psi, "status": f.status} for n, f in self.features.items()},
            "score": {"psi": self.score.psi, "status": self.score.status},
            "drifted": self.drifted,
        }


class RollingDrift(WindowDrift):
    minutes: int = Field(
        description="The window's length: windows of this many minutes of the clock, from "
        "the Unix epoch (60: each hour, UTC); the one shown is the last that closed."
    )
    until: str = Field(description="When the window shown closed (UTC).")


class DriftReport(WindowDrift):
    """Since the service started (at the top level) and over the rolling window.

    A model without a reference profile (imported without reference data) has nothing
    to compare with: `reference` is false, `message` says so, and the windows are empty.
    """

    model_version: str
    reference: bool = Field(
        True, description="Whether the model has a reference profile to measure drift against."
    )
    message: str | None = Field(None, description="Why there are no figures, when there are none.")
    since: str = Field(description="When the first worker started profiling (UTC).")
    workers: int = Field(
        description="Worker processes that have scored customers, past ones too: all summed."
    )
    rolling: RollingDrift
    thresholds: Thresholds
