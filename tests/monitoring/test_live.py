"""The live profile's counting, windows and sharing, on real files; the service is in
test_live_service.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from churn.model.artifact import ModelMetadata
from churn.model.training import TrainingResult
from churn.monitoring.live import LiveProfile, ProfilingScorer, scorer_for
from churn.monitoring.profile import Binner, ReferenceProfile, input_columns
from churn.record.errors import ConfigurationError
from churn.record.schema import CustomerFeatures
from churn.scoring.scorer import Scorer
from churn.settings import ServiceSettings
from tests.monitoring.conftest import like_training
from tests.monitoring.test_profile import customers


class Clock:
    """Time as the test sets it, for the rolling window."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def parts(trained: TrainingResult) -> tuple[Scorer, ReferenceProfile, Binner]:
    profile = ReferenceProfile.model_validate(trained.metadata.reference_profile)
    return Scorer(trained.tree, 0.3), profile, Binner(profile, input_columns(trained.tree))


def test_two_workers_counts_are_summed_single_customers_and_batches_alike(
    parts: tuple[Scorer, ReferenceProfile, Binner], tmp_path: Path
) -> None:
    scorer, profile, binner = parts
    first, second = (LiveProfile(profile, binner, tmp_path, 60) for _ in range(2))
    matrix = scorer.matrix(customers(700, seed=41))
    scores = scorer.probabilities(matrix)
    for row in range(300):  # one at a time, as /v1/customer
        first.observe(matrix[row : row + 1], scores[row : row + 1])
    second.observe(matrix[300:650], scores[300:650])  # a batch
    second.observe(matrix[650:], scores[650:])
    expected = binner.counts(matrix, scores)
    for worker in (first, second):
        counts = worker.read()
        np.testing.assert_array_equal(counts.since_start, expected)
        np.testing.assert_array_equal(counts.rolling, expected)
        assert counts.workers == 2
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["worker", "worker"]


def test_single_customers_are_counted_by_the_time_anyone_reads(
    parts: tuple[Scorer, ReferenceProfile, Binner], tmp_path: Path
) -> None:
    scorer, profile, binner = parts
    writer, reader = (LiveProfile(profile, binner, tmp_path, 60) for _ in range(2))
    matrix = scorer.matrix(customers(3, seed=42))
    writer.observe(matrix[:1], scorer.probabilities(matrix[:1]))
    assert binner.customers(reader.read().since_start) == 0  # waiting in the writer
    writer.flush()  # what its thread does every second
    assert binner.customers(reader.read().since_start) == 1


def test_the_rolling_window_forgets_what_is_older(
    parts: tuple[Scorer, ReferenceProfile, Binner], tmp_path: Path
) -> None:
    scorer, profile, binner = parts
    clock = Clock()
    live = LiveProfile(profile, binner, tmp_path, 60, clock=clock)
    matrix = scorer.matrix(customers(90, seed=43))
    scores = scorer.probabilities(matrix)

    def customers_in(window: str) -> int:
        return binner.customers(getattr(live.read(), window))

    live.observe(matrix[:10], scores[:10])
    clock.now += 30 * 60
    live.observe(matrix[10:30], scores[10:30])
    assert (customers_in("since_start"), customers_in("rolling")) == (30, 30)
    clock.now += 31 * 60  # the first ten are 61 minutes old
    assert (customers_in("since_start"), customers_in("rolling")) == (30, 20)
    live.observe(matrix[30:90], scores[30:90])  # reuses the first ten's minute slot
    assert (customers_in("since_start"), customers_in("rolling")) == (90, 80)
    clock.now += 24 * 3600
    assert (customers_in("since_start"), customers_in("rolling")) == (90, 0)


def test_files_of_another_model_or_half_written_are_left_out(
    parts: tuple[Scorer, ReferenceProfile, Binner], tmp_path: Path
) -> None:
    scorer, profile, binner = parts
    live = LiveProfile(profile, binner, tmp_path, 60)
    other = LiveProfile(profile, binner, tmp_path, 30)  # another window: another layout
    matrix = scorer.matrix(customers(20, seed=44))
    other.observe(matrix, scorer.probabilities(matrix))
    (tmp_path / "worker-1-1.counts").write_bytes(b"\0" * 800)
    assert live.read().workers == 0
    assert binner.customers(live.read().since_start) == 0


def test_the_files_hold_counts_and_nothing_of_the_customers(
    parts: tuple[Scorer, ReferenceProfile, Binner], tmp_path: Path
) -> None:
    scorer, profile, binner = parts
    live = LiveProfile(profile, binner, tmp_path, 5)
    frame = like_training(50, seed=45)
    frame["Balance"] = 123456.78
    features = frame[list(CustomerFeatures.model_fields)]
    matrix = scorer.matrix(features)
    live.observe(matrix, scorer.probabilities(matrix))
    data = np.fromfile(live.path, dtype=np.int64)
    header, minutes = 8, 5  # then each minute's number, then counts
    assert set(data[header + minutes :].tolist()) <= set(range(51))  # of at most 50 customers
    assert np.float64(123456.78).tobytes() not in live.path.read_bytes()


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
