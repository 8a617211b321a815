"""How well the model's scores match outcomes, overall and per segment.

The model card reports these on the holdout at training; `churn evaluate` reports them
on real outcomes months later, in the same shape, so the two sit side by side.
A figure that cannot be computed for a segment (ROC-AUC with only one outcome in it,
precision with nobody flagged) is left empty, not made up.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, Field

from churn.record.outcome import LabelRule, flagged

CALIBRATION_BINS = 10
OVERALL = "overall"
_DIGITS = 6


class SegmentMetrics(BaseModel):
    group: str = Field(description="overall, or the column the segment is a value of.")
    value: str = Field(description="all, or the segment's value (France, Female, ...).")
    customers: int
    churners: int
    churn_rate: float
    mean_predicted: float = Field(description="Mean churn probability the model gave.")
    flagged: float = Field(description="Share of customers at or above the threshold.")
    roc_auc: float | None = None
    pr_auc: float | None = None
    precision: float | None = Field(default=None, description="At the model's threshold.")
    recall: float | None = Field(default=None, description="At the model's threshold.")
    brier: float

    @property
    def label(self) -> str:
        return "all customers" if self.group == OVERALL else f"{self.group} = {self.value}"


class CalibrationBin(BaseModel):
    lower: float
    upper: float
    customers: int
    mean_predicted: float | None = None
    observed_rate: float | None = None


def segment_metrics(
    group: str,
    value: str,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    label_rule: LabelRule = ">=",
) -> SegmentMetrics:
    # Here: the service shows the card's figures but computes none, and its image has
    # no scikit-learn (training and `churn evaluate` do).
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    chosen = flagged(scores, threshold, label_rule)
    churners = int(labels.sum())
    both_outcomes = 0 < churners < len(labels)
    return SegmentMetrics(
        group=group,
        value=value,
        customers=len(labels),
        churners=churners,
        churn_rate=_round(labels.mean()),
        mean_predicted=_round(scores.mean()),
        flagged=_round(chosen.mean()),
        roc_auc=_round(roc_auc_score(labels, scores)) if both_outcomes else None,
        pr_auc=_round(average_precision_score(labels, scores)) if both_outcomes else None,
        precision=_round(labels[chosen].mean()) if chosen.any() else None,
        recall=_round(chosen[labels == 1].mean()) if churners else None,
        brier=_round(brier_score_loss(labels, scores)),
    )


def segments(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    groups: Mapping[str, np.ndarray],
    label_rule: LabelRule = ">=",
) -> list[SegmentMetrics]:
    """All customers, then each value of each group column (in sorted order)."""
    found = (
        [segment_metrics(OVERALL, "all", labels, scores, threshold, label_rule)]
        if len(labels)
        else []
    )
    for group, values in groups.items():
        values = np.asarray(values, dtype=str)
        for value in sorted(set(values.tolist())):
            chosen = values == value
            found.append(
                segment_metrics(group, value, labels[chosen], scores[chosen], threshold, label_rule)
            )
    return found


def calibration(labels: np.ndarray, scores: np.ndarray) -> list[CalibrationBin]:
    """Predicted against observed churn in ten bins of probability (0-10%, ..., 90-100%)."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    which = np.minimum((scores * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    rows = []
    for index in range(CALIBRATION_BINS):
        chosen = which == index
        rows.append(
            CalibrationBin(
                lower=index / CALIBRATION_BINS,
                upper=(index + 1) / CALIBRATION_BINS,
                customers=int(chosen.sum()),
                mean_predicted=_round(scores[chosen].mean()) if chosen.any() else None,
                observed_rate=_round(labels[chosen].mean()) if chosen.any() else None,
            )
        )
    return rows


def calibration_error(rows: list[CalibrationBin]) -> float | None:
    """Expected calibration error: customer-weighted mean |predicted - observed| over bins."""
    total = sum(row.customers for row in rows)
    if not total:
        return None
    return _round(
        sum(
            row.customers * abs((row.mean_predicted or 0) - (row.observed_rate or 0))
            for row in rows
        )
        / total
    )


def _round(value: float | np.floating) -> float:
    return round(float(value), _DIGITS)
