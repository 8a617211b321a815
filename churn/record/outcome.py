"""What the model says about a customer, defined once: the label, the risk band and the
direction of an explanation's factor.

Risk bands, for retention teams to sort their call lists:
- "low": below the model's decision threshold (labelled not churn);
- "medium": at or above the threshold but below 0.5: flagged, more likely to stay;
- "high": probability at least 0.5 (and at least the threshold): more likely to leave.

The label rule: ">=" (churn at or above the threshold) is the service's own; ">" (churn
strictly above it) is what scikit-learn's and XGBoost's `predict()` do at 0.5, kept for a
model imported from elsewhere so that it labels every customer as its old app did. Under
">" a probability equal to the threshold is "low", as its label is "not churn".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

Label = Literal["churn", "not churn"]
# ">=": churn at or above the threshold; ">": strictly above it (`predict()` at 0.5).
LabelRule = Literal[">=", ">"]
CHURN: Label = "churn"
NOT_CHURN: Label = "not churn"
# Indexed by "is churn" (False, True), as label arrays are built from boolean masks.
LABELS: tuple[Label, Label] = (NOT_CHURN, CHURN)

# The old `/v1/customerbatch` answer capitalised them, and its clients compare strings.
LegacyBatchLabel = Literal["Churn", "Not Churn"]
LEGACY_BATCH_LABELS: tuple[LegacyBatchLabel, LegacyBatchLabel] = ("Not Churn", "Churn")

RiskBand = Literal["low", "medium", "high"]
BANDS: tuple[RiskBand, RiskBand, RiskBand] = ("low", "medium", "high")
HIGH_RISK = 0.5
# Probabilities and contributions in every answer: the service, its files, Spark.
ANSWER_DIGITS = 6
BAND_RULE = (
    "low: below the threshold; medium: at or above it but below 0.5; high: 0.5 or more "
    '(under the label rule ">", a probability equal to the threshold is low).'
)

Direction = Literal["up", "down"]


def label_of(is_churn: bool) -> Label:
    return LABELS[is_churn]


def flagged(probabilities: np.ndarray, threshold: float, rule: LabelRule) -> np.ndarray:
    """Which probabilities are labelled churn under the rule (a boolean array)."""
    if rule == ">":
        return probabilities > threshold
    return probabilities >= threshold


def high_risk_from(threshold: float) -> float:
    """Where the high band starts: 0.5, or the threshold if that is higher."""
    return max(HIGH_RISK, threshold)


def direction_of(contribution: float) -> Direction:
    """Which way a factor pushes the risk (a contribution in log-odds)."""
    return "up" if contribution > 0 else "down"
