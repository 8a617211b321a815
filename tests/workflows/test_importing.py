"""`churn import-model` with pipelines the project's own libraries made: the anchor, the
tampered file, re-import, what the layout cannot express, thresholds, reference data.

The exporter runs in the project's interpreter here (the versions are its own), in a
process of its own, exactly as for a foreign model; tests/model/test_foreign_models.py
builds the other environments.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import bentoml
import joblib
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer, make_column_transformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from sklearn.tree import DecisionTreeClassifier
from xgboost import XGBClassifier

from churn.model.artifact import metadata_path_for
from churn.model.store import load_model
from churn.model.synth import synthesize
from churn.model.training import TrainingResult
from churn.record.errors import ModelIntegrityError
from churn.record.schema import FEATURE_NAMES, GEOGRAPHIES, TARGET
from churn.workflows.importing import import_model
from tests.conftest import run_churn

NUMBERS = [name for name in FEATURE_NAMES if name != "Geography"]


class _RunsOnUnpickle:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fitted(model: Any, rows: int = 1500, **overrides: Any) -> Any:
    frame = synthesize(rows, seed=5)
    for name, values in overrides.items():
        frame[name] = values(frame)
    return model.fit(frame[list(FEATURE_NAMES)], frame[TARGET])


def small_xgboost() -> XGBClassifier:
    return XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1, random_state=1)


def notebook_pipeline(encoder: Any | None = None, remainder: Any = "passthrough") -> Pipeline:
    return make_pipeline(
        make_column_transformer(
            (encoder or OneHotEncoder(handle_unknown="ignore"), ["Geography"]), remainder=remainder
        ),
        small_xgboost(),
    )


def dump(model: Any, folder: Path, name: str = "model_v2_1.joblib") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    joblib.dump(model, path)
    return path


def test_without_an_anchor_the_import_is_refused(
    trained: TrainingResult, model_store: Path
) -> None:
    # churn train's metadata beside the file records its digest: the file vouching for itself.
    assert metadata_path_for(trained.model_path).is_file()
    refused = run_churn("import-model", str(trained.model_path))
    assert refused.returncode == 1
    assert "give its SHA-256 with --sha256" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert bentoml.models.list() == []


def test_a_tampered_file_is_refused_before_anything_unpickles_it(
    trained: TrainingResult, model_store: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    target = folder / trained.model_path.name
    shutil.copy(metadata_path_for(trained.model_path), metadata_path_for(target))
    marker = tmp_path / "code-ran"
    target.write_bytes(pickle.dumps(_RunsOnUnpickle(marker)))
    refused = run_churn("import-model", str(target), "--sha256", trained.metadata.artifact_sha256)
    assert refused.returncode == 1
    assert "SHA-256" in refused.stderr
    assert "expected" in refused.stderr
    assert not marker.exists(), "the tampered pickle was loaded"
    assert bentoml.models.list() == []


def test_code_in_a_pickle_with_the_right_digest_is_still_never_run(
    model_store: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "code-ran"
    path = dump(_RunsOnUnpickle(marker), tmp_path)
    refused = run_churn("import-model", str(path), "--sha256", sha256(path))
    assert refused.returncode == 1
    assert "posix.system" in refused.stderr
    assert not marker.exists()


def test_import_then_again_is_a_no_op_and_force_imports_again(
    trained: TrainingResult, model_store: Path
) -> None:
    digest = trained.metadata.artifact_sha256
    first = import_model(trained.model_path, sha256=digest)
    assert first.imported
    assert first.parity is not None
    assert first.parity.labels_differ == 0
    again = import_model(trained.model_path, sha256=digest)
    assert (again.imported, again.model.tag) == (False, first.model.tag)
    assert len(bentoml.models.list("churn_model")) == 1
    forced = import_model(trained.model_path, sha256=digest, force=True)
    assert forced.imported
    assert forced.model.tag != first.model.tag
    # churn train's metadata beside it records this digest: stored as churn train stores it.
    loaded = load_model(str(first.model.tag))
    assert loaded.metadata == trained.metadata
    assert loaded.metadata.provenance is None
    assert first.model.tag.version == f"1.0-train-{digest[:8]}"


def test_a_pipeline_made_elsewhere_keeps_predicts_rule(model_store: Path, tmp_path: Path) -> None:
    path = dump(fitted(notebook_pipeline()), tmp_path)
    done = run_churn("import-model", str(path), "--sha256", sha256(path))
    assert done.returncode == 0, done.stderr
    assert "parity on 3,000 customers" in done.stderr
    assert "0 labels differ" in done.stderr
    loaded = load_model()
    assert (loaded.metadata.threshold, loaded.metadata.label_rule) == (0.5, ">")
    assert loaded.metadata.model_version == "2.1"  # from the file name
    assert loaded.metadata.reference_profile == {}
    assert loaded.metadata.model_card == {}
    provenance = loaded.metadata.provenance
    assert provenance is not None
    assert provenance.parity.customers == 3000
    assert provenance.parity.labels_differ == 0
    assert provenance.parity.max_abs_probability_diff <= 1e-6
    assert provenance.made_with["scikit-learn"] == provenance.exported_with["scikit-learn"]


def test_threshold_and_version_options(model_store: Path, tmp_path: Path) -> None:
    path = dump(fitted(notebook_pipeline()), tmp_path)
    result = import_model(path, sha256=sha256(path), threshold=0.3, version="7.1")
    assert result.parity is not None
    assert result.parity.labels_differ == 0
    loaded = load_model(str(result.model.tag))
    assert (loaded.metadata.threshold, loaded.metadata.label_rule) == (0.3, ">=")
    assert loaded.metadata.model_version == "7.1"
    with pytest.raises(ModelIntegrityError, match="between 0 and 1"):
        import_model(path, sha256=sha256(path), threshold=1.5, force=True)


def test_reference_data_gives_the_drift_profile_and_the_card(
    model_store: Path, tmp_path: Path, synthetic_csv: Path
) -> None:
    path = dump(fitted(notebook_pipeline()), tmp_path)
    result = import_model(path, sha256=sha256(path), reference_data=synthetic_csv)
    loaded = load_model(str(result.model.tag))
    assert loaded.metadata.reference_profile["rows"] == 3000
    assert loaded.metadata.model_card["holdout"][0]["customers"] == 3000
    assert result.parity is not None
    assert result.parity.probe == f"reference data {synthetic_csv.name}"


def test_dropped_category_and_another_column_order_are_exact(
    model_store: Path, tmp_path: Path
) -> None:
    columns = ColumnTransformer(
        [
            ("numbers", "passthrough", list(reversed(NUMBERS))),
            ("country", OneHotEncoder(drop="first"), ["Geography"]),
        ]
    )
    path = dump(fitted(Pipeline([("prep", columns), ("model", small_xgboost())])), tmp_path)
    result = import_model(path, sha256=sha256(path))
    assert result.parity is not None
    assert result.parity.labels_differ == 0
    columns_served = [c.name for c in load_model().tree.columns]
    assert columns_served == [*reversed(NUMBERS), "Geography_Germany", "Geography_Spain"]


@pytest.mark.parametrize(
    ("model", "says"),
    [
        (
            notebook_pipeline(remainder=FunctionTransformer(np.log1p)),
            "'remainder': FunctionTransformer",
        ),
        (
            make_pipeline(
                make_column_transformer((OneHotEncoder(), ["Geography"]), remainder="passthrough"),
                DecisionTreeClassifier(max_depth=3),
            ),
            "holds no XGBoost model (it names ColumnTransformer, DecisionTreeClassifier",
        ),
        (
            make_pipeline(
                OneHotEncoder(handle_unknown="ignore"),
                small_xgboost(),
            ),
            "'onehotencoder' (OneHotEncoder)",
        ),
    ],
    ids=["log-numbers", "not-xgboost", "no-column-transformer"],
)
def test_steps_the_layout_cannot_express_are_refused_by_name(
    model: Any, says: str, model_store: Path, tmp_path: Path
) -> None:
    path = dump(fitted(model), tmp_path)
    refused = run_churn("import-model", str(path), "--sha256", sha256(path))
    assert refused.returncode == 1
    assert says in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert bentoml.models.list() == []


def test_a_country_outside_the_schema_is_refused_by_name(model_store: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    countries = np.array([*GEOGRAPHIES, "Italy"])
    model = fitted(notebook_pipeline(), Geography=lambda frame: rng.choice(countries, len(frame)))
    path = dump(model, tmp_path)
    with pytest.raises(ModelIntegrityError, match="knows Geography Italy, which the customer"):
        import_model(path, sha256=sha256(path))


def test_an_encoder_that_refused_a_schema_country_is_refused(
    model_store: Path, tmp_path: Path
) -> None:
    encoder = OneHotEncoder(categories=[["France", "Germany"]], handle_unknown="error")
    model = fitted(
        notebook_pipeline(encoder),
        Geography=lambda frame: frame["Geography"].replace("Spain", "France"),
    )
    path = dump(model, tmp_path)
    with pytest.raises(ModelIntegrityError, match="does not know Geography Spain"):
        import_model(path, sha256=sha256(path))


def test_a_wrong_or_malformed_digest_is_refused(trained: TrainingResult, model_store: Path) -> None:
    with pytest.raises(ModelIntegrityError, match="its SHA-256 is"):
        import_model(trained.model_path, sha256="0" * 64)
    with pytest.raises(ModelIntegrityError, match="not a SHA-256"):
        import_model(trained.model_path, sha256="abc")
    assert bentoml.models.list() == []
