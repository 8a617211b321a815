from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import bentoml
import pytest

from churn.model.artifact import metadata_path_for
from churn.model.booster import TreeModel
from churn.model.store import STORED_BOOSTER, STORED_FILE, import_model, load_model
from churn.model.training import TrainingResult
from churn.record.errors import ModelIntegrityError
from tests.conftest import run_churn


class _RunsOnUnpickle:
    """A pickle payload that leaves a marker file when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def copy_model(trained: TrainingResult, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / trained.model_path.name
    shutil.copy(trained.model_path, target)
    shutil.copy(metadata_path_for(trained.model_path), metadata_path_for(target))
    return target


def test_import_records_metadata_labels_and_digest(
    trained: TrainingResult, model_store: Path
) -> None:
    model, imported = import_model(trained.model_path)
    assert imported
    stored = bentoml.models.get("churn_model:latest")
    assert stored.tag == model.tag
    assert stored.info.labels["model_version"] == "1.0"
    assert stored.info.labels["owner"] == "customer-analytics-retention"
    recorded: dict[str, Any] = dict(stored.info.metadata)
    assert recorded["threshold"] == trained.metadata.threshold
    assert recorded["metrics"]["roc_auc"] == trained.metadata.metrics.roc_auc
    assert recorded["feature_schema"][1]["categories"] == ["France", "Germany", "Spain"]
    loaded = load_model()
    assert loaded.metadata == trained.metadata


def test_import_is_idempotent(trained: TrainingResult, model_store: Path) -> None:
    first, _ = import_model(trained.model_path)
    again, imported = import_model(trained.model_path)
    assert (again.tag, imported) == (first.tag, False)
    assert len(bentoml.models.list("churn_model")) == 1


def test_tampered_file_is_refused_before_it_is_unpickled(
    trained: TrainingResult, model_store: Path, tmp_path: Path
) -> None:
    model_path = copy_model(trained, tmp_path / "evil")
    marker = tmp_path / "code-ran"
    model_path.write_bytes(pickle.dumps(_RunsOnUnpickle(marker)))
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        import_model(model_path)
    assert not marker.exists(), "the tampered pickle was loaded"
    assert bentoml.models.list() == []


def test_explicit_digest_must_match(
    trained: TrainingResult, model_store: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        import_model(trained.model_path, sha256="0" * 64)
    with pytest.raises(ModelIntegrityError, match="not a SHA-256"):
        import_model(trained.model_path, sha256="abc")


def test_missing_metadata_is_refused(trained: TrainingResult, tmp_path: Path) -> None:
    lone = tmp_path / trained.model_path.name
    shutil.copy(trained.model_path, lone)
    with pytest.raises(ModelIntegrityError, match="metadata"):
        import_model(lone)


def test_store_file_changed_after_import_is_refused_on_load(
    trained: TrainingResult, model_store: Path
) -> None:
    model, _ = import_model(trained.model_path)
    stored_file = Path(model.path_of(STORED_FILE))
    stored_file.write_bytes(stored_file.read_bytes() + b"\x00")
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        load_model()


def test_cli_import_and_tamper(trained: TrainingResult, model_store: Path, tmp_path: Path) -> None:
    ok = run_churn("import-model", str(trained.model_path))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("imported churn_model:")
    listed = bentoml.models.list("churn_model")
    assert len(listed) == 1

    model_path = copy_model(trained, tmp_path / "tampered")
    with model_path.open("ab") as handle:
        handle.write(b"junk")
    refused = run_churn("import-model", str(model_path))
    assert refused.returncode == 1
    assert "Refusing to load" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_store_keeps_the_booster_file_with_its_digest(
    trained: TrainingResult, model_store: Path
) -> None:
    model, _ = import_model(trained.model_path)
    data = Path(model.path_of(STORED_BOOSTER)).read_bytes()
    assert model.info.metadata["booster_sha256"] == hashlib.sha256(data).hexdigest()
    pipeline = load_model().pipeline
    assert data == TreeModel.from_pipeline(pipeline).to_bytes()


def test_importing_again_adds_the_booster_file_to_an_older_import(
    trained: TrainingResult, model_store: Path
) -> None:
    """A model imported before the store kept the booster file gets it from `make setup`."""
    model, _ = import_model(trained.model_path)
    Path(model.path_of(STORED_BOOSTER)).unlink()
    del model.info.metadata["booster_sha256"]
    model.flush()  # type: ignore[no-untyped-call]
    again, imported = import_model(trained.model_path)
    assert (again.tag, imported) == (model.tag, False)
    stored = bentoml.models.get(model.tag)
    data = Path(stored.path_of(STORED_BOOSTER)).read_bytes()
    assert stored.info.metadata["booster_sha256"] == hashlib.sha256(data).hexdigest()
