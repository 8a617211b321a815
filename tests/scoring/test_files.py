"""File scoring in-process: the stages that overlap (read ahead, write behind) stop
cleanly and hand errors on, and every row is in the answer once, in file order."""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Generator
from pathlib import Path

import pyarrow as pa
import pytest

from churn.model.store import LoadedModel
from churn.model.training import TrainingResult
from churn.monitoring.live import ProfilingScorer
from churn.monitoring.live_counts import LiveProfile
from churn.monitoring.profile import Binner, input_columns, reference_of
from churn.record.errors import InvalidInput, PayloadTooLarge
from churn.scoring.files import DuplicateIds, score_file, score_legacy_file
from churn.scoring.predictor import ChurnPredictor
from churn.scoring.stages import ahead, behind
from tests.factories import BANK_COLUMNS, bank_row

WriteCsv = Callable[..., Path]


@pytest.fixture
def predictor(trained: TrainingResult) -> ChurnPredictor:
    return ChurnPredictor(LoadedModel(trained.tree, trained.metadata, "churn_model:test"))


STAGES = ("churn-read-ahead", "churn-write-behind")


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in STAGES]


def test_every_row_once_in_file_order_over_many_batches(
    predictor: ChurnPredictor, write_csv: WriteCsv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("churn.record.csv_reading.BATCH_ROWS", 7)
    rows = [bank_row(i, 15600000 + i % 90, Age=18 + i % 70) for i in range(1, 201)]
    rows[99] = bank_row(100, 15600100, Age="old")
    path = write_csv("\n".join([BANK_COLUMNS, *rows]) + "\n")
    for output in ("csv", "json"):
        summary = score_file(predictor, path, tmp_path / f"out.{output}", output)
        assert (summary.rows_in, summary.rows_scored, summary.rows_rejected) == (200, 199, 1)
        assert summary.duplicate_ids == 200 - 91  # ids 15600000-89, and 15600100 once
    with (tmp_path / "out.csv").open(newline="") as answer:
        assert [int(row["row"]) for row in csv.DictReader(answer)] == list(range(1, 201))
    assert stage_threads() == []


def test_too_many_rows_stops_every_stage(
    predictor: ChurnPredictor, write_csv: WriteCsv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("churn.record.csv_reading.BATCH_ROWS", 5)
    rows = [bank_row(i, i) for i in range(1, 101)]
    path = write_csv("\n".join([BANK_COLUMNS, *rows]) + "\n")
    with pytest.raises(PayloadTooLarge):
        score_file(predictor, path, tmp_path / "out.csv", max_rows=12)
    assert stage_threads() == []


def numbers(count: int, fail_at: int | None = None) -> Generator[int]:
    for number in range(count):
        if number == fail_at:
            raise ValueError(f"no {number}")
        yield number


def test_read_ahead_hands_on_items_and_errors_and_stops_with_its_consumer() -> None:
    assert list(ahead(numbers(50))) == list(range(50))
    with pytest.raises(ValueError, match="no 7"):
        list(ahead(numbers(50, fail_at=7)))
    items = ahead(numbers(1_000_000))
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()  # the consumer stops early: the producer stops too, far from the end
    assert stage_threads() == []


def test_write_behind_makes_every_call_and_hands_on_its_error() -> None:
    made: list[int] = []
    with behind(made.append) as append:
        for number in range(100):
            append(number)
    assert made == list(range(100))

    def fail_on_three(number: int) -> None:
        if number == 3:
            raise OSError("disk full")

    def hand_over_all() -> None:
        with behind(fail_on_three) as call:
            for number in range(100):
                call(number)

    with pytest.raises(OSError, match="disk full"):
        hand_over_all()
    assert stage_threads() == []


@pytest.mark.parametrize(
    ("batches", "duplicates"),
    [
        ([["1", "2", "3"], ["4", "2", "1"]], 2),  # across batches
        ([["15574012", "9", "10"], ["100", None, None]], 0),  # no id is no duplicate
        ([["-5", "5"], ["-5"]], 1),
        ([["7", "007"], ["7"]], 1),  # written differently: other customers
        ([["+7"], ["7", "+7"]], 1),
        ([["7", "A-7"], ["a-7", "A-7"]], 1),  # some ids are text: the whole file by text
        ([["9223372036854775807"], ["9223372036854775808", "9223372036854775808"]], 1),
        ([["1.0", "1"], ["1e0"]], 0),
        ([[], ["3", "3"]], 1),
    ],
)
def test_duplicate_ids_are_counted_as_text_whether_or_not_they_are_numbers(
    batches: list[list[str | None]], duplicates: int
) -> None:
    counter = DuplicateIds()
    for ids in batches:
        counter.add(pa.array(ids, type=pa.string()))
    assert counter.count() == duplicates
    every = [i for ids in batches for i in ids if i is not None]
    assert duplicates == len(every) - len(set(every))


def test_a_legacy_upload_refused_counts_nobody_into_drift(
    trained: TrainingResult, write_csv: WriteCsv, tmp_path: Path
) -> None:
    # Issue 27: a /v1/customerbatch upload refused with 422 ("nothing was scored") still
    # counted its valid rows into drift, again on each retry.
    profile = reference_of(trained.metadata)
    binner = Binner(profile, input_columns(trained.tree))
    now = [1_800_000_000.0]
    live = LiveProfile(profile, binner, tmp_path / "drift", 60, clock=lambda: now[0])
    scorer = ProfilingScorer(trained.tree, trained.metadata, live)
    predictor = ChurnPredictor(
        LoadedModel(trained.tree, trained.metadata, "churn_model:test"), scorer
    )
    rows = [bank_row(row, 15_600_000 + row, Age=20 + row % 60) for row in range(1, 151)]
    refused = write_csv("\n".join([BANK_COLUMNS, *rows, bank_row(151, 15_600_001)]) + "\n")
    for _ in range(3):
        with pytest.raises(InvalidInput, match="nothing was scored"):
            score_legacy_file(predictor, refused)
    answered = write_csv("\n".join([BANK_COLUMNS, *rows]) + "\n", "answered.csv")
    assert len(score_legacy_file(predictor, answered)) == len(rows)
    now[0] += 3600  # the window closes, and is shown
    assert binner.customers(live.read().since_start) == len(rows)
