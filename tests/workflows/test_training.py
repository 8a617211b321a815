from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from churn.model.artifact import artifact_name, metadata_path_for, sha256_file
from churn.model.training import TrainingResult
from churn.record.csv_reading import read_customer_batches
from churn.record.errors import InvalidInput
from churn.workflows.training import train
from tests.conftest import PUBLIC_DATA
from tests.factories import BANK_COLUMNS, bank_row


def test_metadata_records_what_was_trained(trained: TrainingResult, synthetic_csv: Path) -> None:
    meta = trained.metadata
    assert trained.model_path.name == artifact_name("1.0") == "churn_prediction_model_v1_0.joblib"
    assert meta.artifact_sha256 == sha256_file(trained.model_path)
    assert meta.data_sha256 == sha256_file(synthetic_csv)
    assert metadata_path_for(trained.model_path).is_file()
    assert 0.05 <= meta.threshold <= 0.95
    assert "precision" in meta.threshold_rule
    assert {"scikit-learn", "xgboost-cpu", "pandas", "joblib"} <= set(meta.libraries)
    assert meta.metrics is not None
    assert 0.5 < meta.metrics.roc_auc <= 1
    assert 0 <= meta.metrics.brier <= 0.25
    assert meta.metrics.holdout_rows == 750


def test_same_data_and_seed_give_the_same_model(
    trained: TrainingResult, synthetic_csv: Path, tmp_path: Path
) -> None:
    again = train(synthetic_csv, tmp_path, seed=7)
    assert again.metadata.metrics == trained.metadata.metrics
    assert again.metadata.threshold == trained.metadata.threshold
    assert again.metadata.artifact_sha256 == trained.metadata.artifact_sha256


def test_training_refuses_bad_rows_instead_of_dropping_them(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("\n".join([BANK_COLUMNS, bank_row(1), bank_row(2, 2, Age="old")]) + "\n")
    with pytest.raises(InvalidInput) as caught:
        train(data, tmp_path / "out")
    assert [(p.row, p.field) for p in caught.value.problems] == [(2, "Age")]


def test_progress_is_reported(synthetic_csv: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    train(synthetic_csv, tmp_path, seed=7, progress=messages.append)
    assert any("fold 5/5" in message for message in messages)
    assert messages[-1].startswith("wrote")


@pytest.mark.slow
@pytest.mark.skipif(
    not PUBLIC_DATA.is_file(),
    reason=f"the public data set is not at {PUBLIC_DATA}; the quality check needs it",
)
def test_quality_on_the_public_data_set(tmp_path: Path) -> None:
    result = train(PUBLIC_DATA, tmp_path, seed=42)
    assert result.metadata.metrics is not None
    print(f"public data ROC-AUC {result.metadata.metrics.roc_auc:.4f}")
    assert result.metadata.metrics.roc_auc >= 0.86
    assert result.metadata.metrics.holdout_rows == 2500


def _refusal(read: Callable[[], object]) -> tuple[str, list[tuple[int | None, str]]]:
    with pytest.raises(InvalidInput) as caught:
        read()
    error = caught.value
    return error.message, [(p.row, p.message) for p in error.problems]


STRAY_QUOTES = {
    # One record would join row 2's first cells to row 4's last ones, with the right
    # number of fields: a customer who does not exist, rows 3 and 4 gone.
    "closed rows later": {2: ("Hargrave", '"Hargrave'), 4: ("Hargrave", 'Hargrave"')},
    "never closed": {3: (",France", ',"France')},
}


@pytest.mark.parametrize("case", STRAY_QUOTES)
def test_training_refuses_what_the_service_refuses_with_its_words(
    tmp_path: Path, case: str
) -> None:
    rows = [bank_row(i, 15600000 + i) for i in range(1, 7)]
    for row, (old, new) in STRAY_QUOTES[case].items():
        rows[row - 1] = rows[row - 1].replace(old, new)
    data = tmp_path / "stray.csv"
    data.write_text("\n".join([BANK_COLUMNS, *rows]) + "\n", encoding="utf-8")
    service = _refusal(lambda: list(read_customer_batches(data)))
    assert "A quote opens in" in service[0]
    assert _refusal(lambda: train(data, tmp_path / "out")) == service


def test_labels_are_numbered_as_the_service_numbers_rows(tmp_path: Path) -> None:
    # Blank lines are no rows (churn.record.rows); spaces around a cell are layout.
    rows = [bank_row(i, 15600000 + i) for i in range(1, 5)]
    rows[1] = rows[1][:-1] + " 0 "
    rows[3] = rows[3][:-1] + "2"
    data = tmp_path / "labels.csv"
    data.write_text("\n".join([BANK_COLUMNS, rows[0], "", rows[1], "  ", *rows[2:]]) + "\n")
    with pytest.raises(InvalidInput) as caught:
        train(data, tmp_path / "out")
    assert [(p.row, p.field) for p in caught.value.problems] == [(4, "Exited")]
