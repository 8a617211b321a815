"""PSI and its status thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from churn.monitoring.drift import DRIFT_PSI, MIN_CUSTOMERS, WARN_PSI, psi, status_of


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    reference = np.array([100, 200, 300, 400])
    assert psi(reference, reference * 3) == 0
    small = psi(reference, np.array([110, 190, 300, 400]))
    large = psi(reference, np.array([400, 300, 200, 100]))
    assert small is not None
    assert large is not None
    assert 0 < small < large


def test_psi_by_hand() -> None:
    reference, current = np.array([50, 50]), np.array([80, 20])
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi(reference, current) == pytest.approx(expected, abs=1e-6)


def test_empty_bins_count_as_a_tiny_share_and_bins_empty_on_both_sides_are_left_out() -> None:
    reference, current = np.array([50, 50, 0, 0]), np.array([100, 0, 0, 0])
    shares = (np.array([0.5, 0.5]), np.array([1.0, 1e-4]))
    expected = float(np.sum((shares[1] - shares[0]) * np.log(shares[1] / shares[0])))
    assert psi(reference, current) == pytest.approx(expected, abs=1e-6)


def test_no_customers_no_psi() -> None:
    assert psi(np.array([1, 2]), np.array([0, 0])) is None


@pytest.mark.parametrize(
    ("value", "customers", "status"),
    [
        (0.0, MIN_CUSTOMERS, "ok"),
        (WARN_PSI - 1e-6, 5000, "ok"),
        (WARN_PSI, 5000, "warn"),
        (DRIFT_PSI - 1e-6, 5000, "warn"),
        (DRIFT_PSI, 5000, "drift"),
        (3.0, MIN_CUSTOMERS - 1, "insufficient"),
        (None, 0, "insufficient"),
    ],
)
def test_status_thresholds(value: float | None, customers: int, status: str) -> None:
    assert status_of(value, customers) == status
