"""The service's scorer: profiling unless turned off (live); the service itself is in
test_live_service.py."""

from __future__ import annotations

import datetime as dt

import pytest

from churn.model.artifact import ModelMetadata
from churn.model.training import TrainingResult
from churn.monitoring.live import ProfilingOff, ProfilingScorer, live_report, scorer_for
from churn.record.errors import ConfigurationError
from churn.scoring.scorer import Scorer
from churn.settings import ServiceSettings


def test_the_service_scorer_profiles_unless_turned_off(
    trained: TrainingResult,
) -> None:

    def scorer(metadata: ModelMetadata, profiling: bool) -> Scorer:
        return scorer_for(trained.tree, metadata, profiling=profiling, window_minutes=60)

    assert isinstance(scorer(trained.metadata, True), ProfilingScorer)
    assert not isinstance(scorer(trained.metadata, False), ProfilingScorer)
    older = trained.metadata.model_copy(update={"reference_profile": {}})
    assert not isinstance(scorer(older, True), ProfilingScorer)


@pytest.mark.parametrize("minutes", ["0", "10081", "an hour"])
def test_a_window_it_cannot_keep_is_refused_at_start(
    minutes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_DRIFT_WINDOW_MINUTES", minutes)
    with pytest.raises(ConfigurationError, match="CHURN_DRIFT_WINDOW_MINUTES"):
        ServiceSettings.from_environment()


def test_drift_says_why_it_has_no_figures(trained: TrainingResult) -> None:
    older = trained.metadata.model_copy(update={"reference_profile": {}})
    plain = scorer_for(trained.tree, older, profiling=True, window_minutes=60)
    report = live_report(plain, older)
    assert (report.reference, report.customers, report.workers) == (False, 0, 0)
    assert "no reference profile" in (report.message or "")
    since = dt.datetime.fromisoformat(report.since)
    assert abs((dt.datetime.now(dt.UTC) - since).total_seconds()) < 60
    assert report.rolling.until == report.since
    off = scorer_for(trained.tree, trained.metadata, profiling=False, window_minutes=60)
    with pytest.raises(ProfilingOff, match="CHURN_DRIFT_PROFILING=false"):
        live_report(off, trained.metadata)
