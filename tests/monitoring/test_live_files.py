"""The workers' files: what they hold, their permissions, and which are read (live_files)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from churn.monitoring.live_counts import LiveProfile
from churn.monitoring.profile import Binner, ReferenceProfile
from churn.record.schema import CustomerFeatures
from churn.scoring.scorer import Scorer
from tests.monitoring.conftest import Clock, customers, like_training


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
