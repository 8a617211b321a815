"""The live profile's counting, windows and sharing, on real files; the service is in
test_live_service.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from churn.model.artifact import ModelMetadata
from churn.model.training import TrainingResult
from churn.monitoring.drift import MIN_CUSTOMERS
from churn.monitoring.live import ProfilingScorer, scorer_for
from churn.monitoring.live_counts import LiveProfile
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
    clock = Clock()
    first, second = (LiveProfile(profile, binner, tmp_path, 60, clock=clock) for _ in range(2))
    matrix = scorer.matrix(customers(700, seed=41))
    scores = scorer.probabilities(matrix)
    for row in range(300):  # one at a time, as /v1/customer
        first.observe(matrix[row : row + 1], scores[row : row + 1])
    second.observe(matrix[300:650], scores[300:650])  # a batch
    second.observe(matrix[650:], scores[650:])
    for worker in (first, second):
        worker.publish()  # what their threads do every second
    assert binner.customers(first.read().since_start) == 0  # the window is still open
    clock.now += 3600
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
    clock = Clock()
    writer, reader = (LiveProfile(profile, binner, tmp_path, 60, clock=clock) for _ in range(2))
    matrix = scorer.matrix(customers(MIN_CUSTOMERS, seed=42))
    scores = scorer.probabilities(matrix)
    for row in range(MIN_CUSTOMERS):
        writer.observe(matrix[row : row + 1], scores[row : row + 1])
    assert not writer.path.exists()  # waiting in the writer
    writer.publish()  # what its thread does every second
    clock.now += 3600
    assert binner.customers(reader.read().since_start) == MIN_CUSTOMERS


def test_windows_are_shown_when_they_close_and_only_with_enough_customers(
    parts: tuple[Scorer, ReferenceProfile, Binner], tmp_path: Path
) -> None:
    scorer, profile, binner = parts
    clock = Clock()  # 1_800_000_000 is 08:00 UTC: a window of 60 minutes opens
    live = LiveProfile(profile, binner, tmp_path, 60, clock=clock)
    matrix = scorer.matrix(customers(400, seed=43))
    scores = scorer.probabilities(matrix)

    def shown() -> tuple[int, int]:
        counts = live.read()
        return binner.customers(counts.since_start), binner.customers(counts.rolling)

    live.observe(matrix[:150], scores[:150])
    clock.now += 59 * 60
    live.observe(matrix[150:200], scores[150:200])
    assert shown() == (0, 0)  # the window is open
    clock.now += 60  # 09:00
    assert shown() == (200, 200)
    live.observe(matrix[200:230], scores[200:230])  # 30: too few for 09:00-10:00
    assert shown() == (200, 200)
    clock.now += 3600  # 10:00
    assert shown() == (200, 0)
    live.observe(matrix[230:400], scores[230:400])  # 10:00-11:00 reuses 08:00's row
    clock.now += 3600  # 11:00
    assert shown() == (370, 170)
    clock.now += 24 * 3600
    assert shown() == (370, 0)
    assert live.report("1.0").rolling.until == "2027-01-16T11:00:00+00:00"


def test_one_customer_more_changes_no_figure_until_the_window_closes(
    parts: tuple[Scorer, ReferenceProfile, Binner], tmp_path: Path
) -> None:
    """Issue 27: with 4,230 customers counted, /v2/drift read before and after one request
    gave all ten bins of the new customer."""
    scorer, profile, binner = parts
    clock = Clock()
    live = LiveProfile(profile, binner, tmp_path, 60, clock=clock)
    matrix = scorer.matrix(customers(501, seed=46))
    scores = scorer.probabilities(matrix)
    live.observe(matrix[:500], scores[:500])
    clock.now += 3600
    before = live.report("1.0")
    live.observe(matrix[500:], scores[500:])
    live.publish()
    assert live.report("1.0") == before
    clock.now += 3600  # it closes with one customer: left out
    after = live.report("1.0")
    assert after.model_dump(exclude={"rolling"}) == before.model_dump(exclude={"rolling"})
    assert after.rolling.customers == 0
    assert after.rolling.score.current is None
    assert after.rolling.score.psi is None


def test_files_of_another_model_or_half_written_are_left_out(
    parts: tuple[Scorer, ReferenceProfile, Binner], tmp_path: Path
) -> None:
    scorer, profile, binner = parts
    clock = Clock()
    live = LiveProfile(profile, binner, tmp_path, 60, clock=clock)
    other = LiveProfile(profile, binner, tmp_path, 30, clock=clock)  # another window
    matrix = scorer.matrix(customers(200, seed=44))
    other.observe(matrix, scorer.probabilities(matrix))
    other.publish()
    (tmp_path / "worker-1-1.counts").write_bytes(b"\0" * 800)
    clock.now += 3600
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
    live.publish()
    data = np.fromfile(live.path, dtype=np.int64)
    header, windows = 8, 2  # then the two windows' numbers, then counts
    assert set(data[header + windows :].tolist()) <= set(range(51))  # of at most 50
    assert np.float64(123456.78).tobytes() not in live.path.read_bytes()
    assert stat.S_IMODE(live.path.stat().st_mode) == 0o600


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


def test_a_file_that_is_not_the_services_own_is_skipped_with_a_warning(
    parts: tuple[Scorer, ReferenceProfile, Binner], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scorer, profile, binner = parts
    clock = Clock()
    folder = tmp_path / "instance"
    reader, writer = (LiveProfile(profile, binner, folder, 60, clock=clock) for _ in range(2))
    matrix = scorer.matrix(customers(150, seed=47))
    writer.observe(matrix, scorer.probabilities(matrix))
    writer.publish()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    clock.now += 3600
    assert binner.customers(reader.read().since_start) == 150
    good = writer.path.read_bytes()
    negative = np.frombuffer(good, dtype=np.int64).copy()
    negative[-1] = -5
    (folder / "worker-7-7.counts").write_bytes(negative.tobytes())
    if os.geteuid() == 0:  # another user's file, with this service's counts
        other = folder / "worker-8-8.counts"
        other.write_bytes(good)
        os.chown(other, 65534, 65534)
    assert binner.customers(reader.read().since_start) == 150
    assert "worker-7-7.counts" in caplog.text
    assert "negative counts" in caplog.text
    if os.geteuid() == 0:
        assert "another user owns it" in caplog.text
