"""Live drift: the customers the service scores, profiled in every worker, summed for all.

Every scoring route goes through `Scorer.probabilities` with the model's input matrix:
`ProfilingScorer` counts those rows and their scores into the reference profile's bins
(`churn.monitoring.profile.Binner`) before handing the scores back. service.py builds
the service's scorer with `scorer_for`, the one hook in the service, and GET /v2/drift
answers with `live_report`. Scoring never depends on drift: a count that fails is logged
and dropped, never the answer and never the worker.

The parts, each in its module:
- `live_counts`: a worker's counts per bin in its memory, over closed windows of the clock,
  and the rule that shows populations, never one customer (`MIN_CUSTOMERS` a window);
- `live_files`: each worker's counts published as a file of its own, and the other
  workers' files read, only if they are this service's own;
- `live_gauges`: the same figures as gauges on /metrics, and the thread that publishes.
"""

from __future__ import annotations

import atexit
import time

import numpy as np

from churn.model.artifact import ModelMetadata
from churn.model.booster import TreeModel
from churn.monitoring.drift import THRESHOLDS
from churn.monitoring.live_counts import LiveProfile, utc
from churn.monitoring.live_files import LOG, DriftUnavailable, shared_directory
from churn.monitoring.live_gauges import Flusher
from churn.monitoring.profile import Binner, input_columns, no_reference_message, reference_of
from churn.record.answers import DriftReport, FeatureDrift, RollingDrift, WindowDrift
from churn.record.errors import ChurnError
from churn.scoring.scorer import Scorer


class ProfilingOff(ChurnError):
    status_code = 409
    code = "drift_profiling_off"


class ProfilingScorer(Scorer):
    """A `Scorer` that counts every customer it scores into the live profile."""

    def __init__(
        self, model: TreeModel, metadata: ModelMetadata, live: LiveProfile, *, bulk_threads: int = 1
    ) -> None:
        super().__init__(
            model, metadata.threshold, label_rule=metadata.label_rule, bulk_threads=bulk_threads
        )
        self.live = live
        self._failed = False

    def observe(self, matrix: np.ndarray, scores: np.ndarray) -> None:
        if not len(scores):
            return
        try:
            self.live.observe(matrix, scores)
        except Exception:  # drift costs counts, never an answer
            if not self._failed:
                LOG.exception("drift: could not count customers scored; they are left out")
            self._failed = True


def scorer_for(
    model: TreeModel,
    metadata: ModelMetadata,
    *,
    profiling: bool,
    window_minutes: int,
    bulk_threads: int = 1,
) -> Scorer:
    """The service's scorer: profiling (CHURN_DRIFT_PROFILING, over windows of
    CHURN_DRIFT_WINDOW_MINUTES), unless turned off or the model has no profile."""
    if not profiling or not metadata.reference_profile:
        return Scorer(
            model, metadata.threshold, label_rule=metadata.label_rule, bulk_threads=bulk_threads
        )
    profile = reference_of(metadata)
    binner = Binner(profile, input_columns(model))
    live = LiveProfile(profile, binner, shared_directory(), window_minutes)
    Flusher(live, metadata.model_version).start()
    atexit.register(live.publish)
    return ProfilingScorer(model, metadata, live, bulk_threads=bulk_threads)


def live_report(scorer: Scorer, metadata: ModelMetadata) -> DriftReport:
    """GET /v2/drift's answer for the service's scorer."""
    if not metadata.reference_profile:
        return no_reference_report(metadata)
    if not isinstance(scorer, ProfilingScorer):
        raise ProfilingOff(
            "Live drift profiling is off in this service (CHURN_DRIFT_PROFILING=false)."
        )
    try:
        return scorer.live.report(metadata.model_version)
    except ChurnError:
        raise
    except Exception as error:  # the route answers in the service's shape, never a 500
        LOG.exception("drift: could not compute the live drift report")
        raise DriftUnavailable(
            "Live drift cannot be computed now; scoring is not affected. The service's "
            "log says why."
        ) from error


def no_reference_report(metadata: ModelMetadata) -> DriftReport:
    """/v2/drift for a model without a reference profile: a 200 that says so, no figures.
    Nothing was counted, so the windows are empty."""
    empty = FeatureDrift(psi=None, status="insufficient", bins=[], reference=[], current=[])
    window = WindowDrift(customers=0, features={}, score=empty, drifted=[])
    now = utc(time.time())
    return DriftReport(
        **window.model_dump(),
        model_version=metadata.model_version,
        reference=False,
        message=no_reference_message(metadata),
        since=now,
        workers=0,
        rolling=RollingDrift(minutes=0, until=now, **window.model_dump()),
        thresholds=THRESHOLDS,
    )
