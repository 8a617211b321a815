from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import bentoml
import pytest

from churn.model.artifact import load_verified, metadata_path_for
from churn.model.booster import TreeModel
from churn.model.store import (
    BOOSTER_DIGEST,
    LEGACY_DIGEST,
    LEGACY_PICKLE,
    STORED_BOOSTER,
    find_imported,
    load_model,
    migrate,
    save_once,
    save_tree_model,
    verify_stored,
)
from churn.model.training import TrainingResult
from churn.record.errors import ModelIntegrityError
from tests.conftest import imported_metadata, run_churn


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


def entry_files(model: bentoml.Model) -> set[str]:
    return {path.name for path in Path(model.path).iterdir()}


def test_an_entry_holds_the_booster_and_metadata_and_no_pickle(
    trained: TrainingResult, model_store: Path
) -> None:
    model, imported = save_once(trained.tree, trained.metadata)
    assert imported
    assert entry_files(model) == {STORED_BOOSTER, "model.yaml"}
    stored = bentoml.models.get("churn_model:latest")
    assert stored.tag == model.tag
    assert stored.info.labels["model_version"] == "1.0"
    assert stored.info.labels["owner"] == "customer-analytics-retention"
    assert stored.info.labels["origin"] == "churn-train"
    assert stored.info.labels["source_sha256"] == trained.metadata.artifact_sha256
    recorded: dict[str, Any] = dict(stored.info.metadata)
    assert recorded["threshold"] == trained.metadata.threshold
    assert trained.metadata.metrics is not None
    assert recorded["metrics"]["roc_auc"] == trained.metadata.metrics.roc_auc
    assert recorded["feature_schema"][1]["categories"] == ["France", "Germany", "Spain"]
    assert LEGACY_DIGEST not in recorded
    data = Path(model.path_of(STORED_BOOSTER)).read_bytes()
    assert recorded[BOOSTER_DIGEST] == hashlib.sha256(data).hexdigest()
    loaded = load_model()
    assert loaded.metadata == trained.metadata
    assert loaded.tree.to_bytes() == data == trained.tree.to_bytes()


def test_the_tag_says_which_model_is_which(trained: TrainingResult, model_store: Path) -> None:
    ours, _ = save_once(trained.tree, trained.metadata)
    theirs = save_tree_model(trained.tree, imported_metadata(trained.metadata, "ab" * 32))
    assert ours.tag.version == f"1.0-train-{trained.metadata.artifact_sha256[:8]}"
    assert theirs.tag.version == "1.0-import-abababab"
    assert theirs.info.labels["origin"] == "imported"
    assert theirs.info.labels["label_rule"] == ">"
    # Both live side by side; each loads by its own tag, `latest` is the newest.
    assert load_model(str(ours.tag)).metadata.provenance is None
    loaded = load_model(str(theirs.tag))
    assert loaded.metadata.label_rule == ">"
    assert loaded.metadata.origin().startswith("imported from churn_prediction_model_v1_0.joblib")
    assert load_model().tag == str(theirs.tag)
    listed = run_churn_bentoml("models", "list")
    assert str(ours.tag) in listed
    assert str(theirs.tag) in listed
    # The same model saved again gets a tag of its own.
    again = save_tree_model(trained.tree, imported_metadata(trained.metadata, "ab" * 32))
    assert again.tag.version == "1.0-import-abababab-2"


def run_churn_bentoml(*args: str) -> str:
    import subprocess
    import sys

    bentoml_cli = str(Path(sys.executable).parent / "bentoml")
    wide = {**os.environ, "COLUMNS": "200"}  # rich cuts the table to the terminal's width
    result = subprocess.run(
        [bentoml_cli, *args], capture_output=True, text=True, check=True, env=wide
    )
    return result.stdout


def test_find_imported_by_the_original_files_digest(
    trained: TrainingResult, model_store: Path
) -> None:
    assert find_imported("cd" * 32) is None
    ours, _ = save_once(trained.tree, trained.metadata)
    theirs = save_tree_model(trained.tree, imported_metadata(trained.metadata, "cd" * 32))
    found = find_imported("CD" * 32)
    assert found is not None
    assert found.tag == theirs.tag
    found = find_imported(trained.metadata.artifact_sha256)
    assert found is not None
    assert found.tag == ours.tag


def test_import_is_idempotent(trained: TrainingResult, model_store: Path) -> None:
    first, _ = save_once(trained.tree, trained.metadata)
    again, imported = save_once(trained.tree, trained.metadata)
    assert (again.tag, imported) == (first.tag, False)
    assert len(bentoml.models.list("churn_model")) == 1


def test_booster_changed_after_import_is_refused_before_it_is_read(
    trained: TrainingResult, model_store: Path
) -> None:
    model, _ = save_once(trained.tree, trained.metadata)
    stored_file = Path(model.path_of(STORED_BOOSTER))
    stored_file.write_bytes(stored_file.read_bytes() + b"\x00")
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        verify_stored("churn_model:latest")
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        load_model()


def test_an_entry_without_a_booster_digest_is_refused(
    trained: TrainingResult, model_store: Path
) -> None:
    model, _ = save_once(trained.tree, trained.metadata)
    del model.info.metadata[BOOSTER_DIGEST]
    model.flush()  # type: ignore[no-untyped-call]
    with pytest.raises(ModelIntegrityError, match="no booster file with a recorded digest"):
        verify_stored(str(model.tag))


def test_cli_import_and_tamper(trained: TrainingResult, model_store: Path, tmp_path: Path) -> None:
    digest = trained.metadata.artifact_sha256
    ok = run_churn("import-model", str(trained.model_path), "--sha256", digest)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("imported churn_model:")
    listed = bentoml.models.list("churn_model")
    assert len(listed) == 1

    model_path = copy_model(trained, tmp_path / "tampered")
    with model_path.open("ab") as handle:
        handle.write(b"junk")
    refused = run_churn("import-model", str(model_path), "--sha256", digest)
    assert refused.returncode == 1
    assert "Refusing to load" in refused.stderr
    assert "Traceback" not in refused.stderr


def legacy_entry(trained: TrainingResult, marker: Path, *, booster: bytes | None = None) -> str:
    """An entry of the previous form: bentoml.sklearn's pickle beside the booster file.

    Its pickle here runs code when loaded, so that a migration that unpickles shows.
    """
    pickled = pickle.dumps(_RunsOnUnpickle(marker))
    data = trained.tree.to_bytes() if booster is None else booster
    recorded = {
        **trained.metadata.stored(),
        LEGACY_DIGEST: hashlib.sha256(pickled).hexdigest(),
        BOOSTER_DIGEST: hashlib.sha256(trained.tree.to_bytes()).hexdigest(),
    }
    with bentoml.models.create(
        "churn_model", module="bentoml.sklearn", labels={"model_version": "1.0"}, metadata=recorded
    ) as model:
        Path(model.path_of(LEGACY_PICKLE)).write_bytes(pickled)
        Path(model.path_of(STORED_BOOSTER)).write_bytes(data)
    return str(model.tag)


def test_migration_rewrites_older_entries_without_unpickling(
    trained: TrainingResult, model_store: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "code-ran"
    old = legacy_entry(trained, marker)
    broken = legacy_entry(trained, marker, booster=b"\x00" + trained.tree.to_bytes())
    done = migrate()
    assert not marker.exists(), "migration unpickled the old entry"
    assert [(m.old, m.new is None) for m in done] == [(old, False), (broken, True)]
    assert "SHA-256" in done[1].reason
    new = bentoml.models.get(str(done[0].new))
    assert entry_files(new) == {STORED_BOOSTER, "model.yaml"}
    assert new.tag.version == f"1.0-train-{trained.metadata.artifact_sha256[:8]}"
    loaded = load_model(str(new.tag))
    assert loaded.metadata == trained.metadata
    assert loaded.tree.to_bytes() == trained.tree.to_bytes()
    with pytest.raises(bentoml.exceptions.NotFound):
        bentoml.models.get(old)
    assert bentoml.models.get(broken)  # left, and reported
    assert migrate()[0].old == broken  # nothing else left to do
    assert len(migrate()) == 1


def test_the_store_keeps_what_the_pipeline_scores_with(
    trained: TrainingResult, model_store: Path
) -> None:
    model, _ = save_once(trained.tree, trained.metadata)
    pipeline = load_verified(trained.model_path, trained.metadata.artifact_sha256)
    data = Path(model.path_of(STORED_BOOSTER)).read_bytes()
    assert data == TreeModel.from_pipeline(pipeline).to_bytes()


def real_older_entry(trained: TrainingResult) -> bentoml.Model:
    """An entry exactly as `churn import-model` wrote it before (bentoml.sklearn)."""
    pipeline = load_verified(trained.model_path, trained.metadata.artifact_sha256)
    saved = bentoml.sklearn.save_model(
        "churn_model",
        pipeline,
        signatures={"predict_proba": {"batchable": True, "batch_dim": 0}},
        labels={"owner": "customer-analytics-retention", "model_version": "1.0"},
        metadata=trained.metadata.model_dump(mode="json", exclude_none=True),
    )
    model = bentoml.models.get(saved.tag)
    pickled = Path(model.path_of(LEGACY_PICKLE)).read_bytes()
    model.info.metadata[LEGACY_DIGEST] = hashlib.sha256(pickled).hexdigest()
    data = trained.tree.to_bytes()
    Path(model.path_of(STORED_BOOSTER)).write_bytes(data)
    model.info.metadata[BOOSTER_DIGEST] = hashlib.sha256(data).hexdigest()
    model.flush()  # type: ignore[no-untyped-call]
    return model


def test_make_setup_migrates_a_real_older_entry(trained: TrainingResult, model_store: Path) -> None:
    old = real_older_entry(trained)
    migrated = run_churn("migrate-store")
    assert migrated.returncode == 0, migrated.stderr
    (line,) = migrated.stdout.splitlines()
    assert line.startswith(f"migrated {old.tag} -> churn_model:1.0-train-")
    (new,) = bentoml.models.list("churn_model")
    assert entry_files(new) == {STORED_BOOSTER, "model.yaml"}
    assert new.info.module == "churn.model.store"
    assert load_model().metadata == trained.metadata
    # `make setup` imports the bundled model next: it finds the migrated entry.
    again, imported = save_once(trained.tree, trained.metadata)
    assert (again.tag, imported) == (new.tag, False)
    assert run_churn("migrate-store").stdout.startswith("the model store holds no entry")
