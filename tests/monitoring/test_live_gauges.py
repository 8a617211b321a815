"""The drift gauges on /metrics: their names, labels and values, as the alert rules read
them (deploy/prometheus/); the real service's are in test_live_service.py."""

from __future__ import annotations

import math
from pathlib import Path

import prometheus_client

from churn.monitoring.drift import MIN_CUSTOMERS, STATUS_CODES
from churn.monitoring.live_counts import LiveProfile
from churn.monitoring.live_gauges import set_gauges
from churn.monitoring.profile import Binner, ReferenceProfile
from churn.scoring.scorer import Scorer
from tests.monitoring.conftest import Clock, customers, shifted


def gauge(name: str, **labels: str) -> float | None:
    return prometheus_client.REGISTRY.get_sample_value(name, labels)


def test_each_feature_and_the_score_has_a_gauge_per_window(
    parts: tuple[Scorer, ReferenceProfile, Binner], tmp_path: Path
) -> None:
    scorer, profile, binner = parts
    clock = Clock()
    live = LiveProfile(profile, binner, tmp_path, 15, clock=clock)
    matrix = scorer.matrix(shifted(customers(300, seed=48)))
    live.observe(matrix, scorer.probabilities(matrix))
    clock.now += 15 * 60  # the window closes with 300 customers: shown as rolling
    live.observe(matrix[: MIN_CUSTOMERS - 1], scorer.probabilities(matrix[: MIN_CUSTOMERS - 1]))
    clock.now += 15 * 60  # and the next with too few: rolling is insufficient, for good
    report = live.report("1.0")
    set_gauges(report)

    assert gauge("churn_drift_customers", window="since_start", minutes="15") == 300
    assert gauge("churn_drift_customers", window="rolling", minutes="15") == 0
    for name in [*report.features, "score"]:
        since = {"feature": name, "window": "since_start", "minutes": "15"}
        rolling = since | {"window": "rolling"}
        figure = report.score if name == "score" else report.features[name]
        assert figure.psi is not None
        assert gauge("churn_drift_psi", **since) == figure.psi
        assert gauge("churn_drift_status", **since) == STATUS_CODES[figure.status]
        assert math.isnan(gauge("churn_drift_psi", **rolling) or 0.0)
        assert gauge("churn_drift_status", **rolling) == -1
    # 20 years older and all in Germany: those two drift, and the gauges say so.
    assert gauge("churn_drift_status", feature="Age", window="since_start", minutes="15") == 2
    assert STATUS_CODES == {"insufficient": -1, "ok": 0, "warn": 1, "drift": 2}
