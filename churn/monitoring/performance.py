"""How well the model's scores match outcomes, overall and per segment.

The model card reports these on the holdout at training; `churn evaluate` reports them
on real outcomes months later, in the same shape, so the two sit side by side.
A figure that cannot be computed for a segment (ROC-AUC with only one outcome in it,
precision with nobody flagged) is left empty, not made up.

Segments show populations, never one customer: a value held by fewer than
`MIN_CUSTOMERS` customers (drift's minimum, the one minimum of model health) is pooled
into "other" with the next smallest values until the pool holds that many, so that no
small group can be had by subtracting the shown segments from the total either.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, Field

from churn.monitoring.drift import MIN_CUSTOMERS
from churn.record.outcome import LabelRule, flagged

CALIBRATION_BINS = 10
OVERALL = "overall"
OTHER = "other"
_DIGITS = 6


class SegmentMetrics(BaseModel):
    group: str = Field(description="overall, or the column the segment is a value of.")
    value: str = Field(description="all, or the segment's value (France, Female, ...).")
    pooled: int | None = Field(
        default=None, description=f"How many values are pooled into this segment ({OTHER})."
    )
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
        if self.group == OVERALL:
            return "all customers"
        if self.pooled:
            return f"{self.group} = {OTHER} ({self.pooled} values)"
        return f"{self.group} = {self.value}"


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


def pooled(counts: Mapping[str, int]) -> set[str]:
    """The values not shown on their own, of a group whose values hold `counts` customers.

    Those under `MIN_CUSTOMERS`, and with them the smallest others until the pool holds
    `MIN_CUSTOMERS`: the total less the shown segments is then the pool, never fewer.
    """
    pool = {value for value, count in counts.items() if count < MIN_CUSTOMERS}
    held = sum(counts[value] for value in pool)
    for value in sorted(counts, key=lambda v: (counts[v], v)):
        if not pool or held >= MIN_CUSTOMERS:
            break
        if value not in pool:
            pool.add(value)
            held += counts[value]
    return pool


def shown_values(values: np.ndarray) -> list[str]:
    """The values of a group column shown as segments of their own, in sorted order."""
    found, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    by_value = dict(zip(found.tolist(), counts.tolist(), strict=True))
    hidden = pooled(by_value)
    return sorted(value for value in by_value if value not in hidden)


def segments(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    groups: Mapping[str, np.ndarray],
    label_rule: LabelRule = ">=",
) -> list[SegmentMetrics]:
    """All customers, then each value of each group column shown on its own (in sorted
    order), then that column's other values pooled, when any value is shown on its own."""
    found = (
        [segment_metrics(OVERALL, "all", labels, scores, threshold, label_rule)]
        if len(labels)
        else []
    )
    for group, values in groups.items():
        values = np.asarray(values, dtype=str)
        shown = shown_values(values)
        for value in shown:
            chosen = values == value
            found.append(
                segment_metrics(group, value, labels[chosen], scores[chosen], threshold, label_rule)
            )
        rest = ~np.isin(values, shown)
        others = len(set(values[rest].tolist()))
        if shown and others:  # the pool holds MIN_CUSTOMERS by construction
            pool = segment_metrics(group, OTHER, labels[rest], scores[rest], threshold, label_rule)
            found.append(pool.model_copy(update={"pooled": others}))
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
