"""A worker's counts over windows of the clock, summed with the other workers' (live_counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from churn.monitoring.drift import MIN_CUSTOMERS
from churn.monitoring.live_counts import LiveProfile
from churn.monitoring.profile import Binner, ReferenceProfile
from churn.scoring.scorer import Scorer
from tests.monitoring.conftest import Clock, customers


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
