from __future__ import annotations

import numpy as np

from churn.monitoring.drift import MIN_CUSTOMERS
from churn.monitoring.performance import segments


def test_figures_at_the_threshold_follow_the_label_rule() -> None:
    # Each country held by MIN_CUSTOMERS customers, so the card shows it on its own.
    each = MIN_CUSTOMERS // 2
    labels = np.repeat([1, 0, 1, 0], each)
    scores = np.repeat([0.5, 0.5, 0.9, 0.1], each)
    groups = {"Geography": np.repeat(["France", "France", "Spain", "Spain"], each)}
    at_or_above = segments(labels, scores, 0.5, groups)
    strictly_above = segments(labels, scores, 0.5, groups, ">")
    assert [s.flagged for s in at_or_above] == [0.75, 1.0, 0.5]
    assert [s.flagged for s in strictly_above] == [0.25, 0.0, 0.5]
    assert (at_or_above[0].precision, at_or_above[0].recall) == (0.666667, 1.0)
    assert (strictly_above[0].precision, strictly_above[0].recall) == (1.0, 0.5)
    assert strictly_above[1].precision is None  # nobody flagged in France
