"""Drift: the population stability index (PSI) of each feature and of the score.

PSI = sum over bins of (current share - reference share) * ln(current / reference),
over the bins fixed at training (`churn.monitoring.profile`). A bin empty on one side
counts as a tiny share, as Evidently does it (1e-4, or a millionth of the smallest
share when that is below 1e-4), and bins empty on both sides are left out; so the
Evidently report of `churn drift` shows the same figures as this module.

The thresholds are the industry's convention for PSI: below 0.1 the population is
stable (ok), 0.1 to 0.25 it has moved (warn), 0.25 or more it has shifted (drift).
PSI over few customers is noisy (about (bins - 1) / customers when nothing changed), so
with fewer than `MIN_CUSTOMERS` in a window the status is "insufficient" instead.

`MIN_CUSTOMERS` is also the one minimum of what may be shown of a group of customers (the
model card's segments and `churn evaluate` use it too): under it, no PSI and no share of
any bin, only the count, because the shares of one customer are that customer's values
in bins. What the service publishes live, and why differencing its readings cannot
single out a customer, is in `churn.monitoring.live_counts`.
"""

from __future__ import annotations

import numpy as np

from churn.monitoring.profile import ReferenceProfile
from churn.record.answers import DriftStatus, FeatureDrift, Thresholds, WindowDrift

WARN_PSI = 0.1
DRIFT_PSI = 0.25
MIN_CUSTOMERS = 100
_DIGITS = 6
# Shares are for people reading the bins: a tenth of a percent is all they need.
SHARE_DIGITS = 3
_SMALLEST_SHARE = 1e-4

# As a gauge on /metrics: the status's number.
STATUS_CODES: dict[DriftStatus, int] = {"insufficient": -1, "ok": 0, "warn": 1, "drift": 2}
THRESHOLDS = Thresholds(warn=WARN_PSI, drift=DRIFT_PSI, min_customers=MIN_CUSTOMERS)


def psi(reference: np.ndarray, current: np.ndarray) -> float | None:
    """PSI of two count vectors over the same bins; None when `current` is empty."""
    if current.sum() == 0 or reference.sum() == 0:
        return None
    present = (reference > 0) | (current > 0)
    expected = _filled(reference[present] / reference.sum())
    actual = _filled(current[present] / current.sum())
    return round(float(np.sum((actual - expected) * np.log(actual / expected))), _DIGITS)


def _filled(shares: np.ndarray) -> np.ndarray:
    smallest = float(shares[shares > 0].min())
    fill = smallest / 1e6 if smallest <= _SMALLEST_SHARE else _SMALLEST_SHARE
    return np.where(shares == 0, fill, shares)


def status_of(value: float | None, customers: int) -> DriftStatus:
    if value is None or customers < MIN_CUSTOMERS:
        return "insufficient"
    if value >= DRIFT_PSI:
        return "drift"
    return "warn" if value >= WARN_PSI else "ok"


def compare(
    profile: ReferenceProfile, counts: dict[str, np.ndarray], customers: int
) -> WindowDrift:
    """Each feature's and the score's drift, from the window's counts per bin."""
    shown = customers >= MIN_CUSTOMERS  # fewer: the count only (module docstring)
    results: dict[str, FeatureDrift] = {}
    for bins in profile.all_bins():
        reference = np.asarray(bins.counts, dtype=np.int64)
        current = np.asarray(counts[bins.name], dtype=np.int64)
        value = psi(reference, current) if shown else None
        results[bins.name] = FeatureDrift(
            psi=value,
            status=status_of(value, customers),
            bins=bins.labels(),
            reference=_shares(reference),
            current=_shares(current) if shown else None,
        )
    score = results.pop(profile.score.name)
    return WindowDrift(
        customers=customers,
        features=results,
        score=score,
        drifted=[
            name
            for name, result in [*results.items(), (profile.score.name, score)]
            if result.status == "drift"
        ],
    )


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    if total == 0:
        return [0.0] * len(counts)
    return [round(float(v), SHARE_DIGITS) for v in counts / total]
