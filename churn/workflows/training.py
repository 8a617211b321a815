"""`churn train`: fit the pipeline (`churn.model.training`), then write what a model is
kept with: the joblib file (for data scientists), its reference profile and model card
(`churn.monitoring`), scored by the service's own `Scorer`, and its metadata."""

from __future__ import annotations

import platform
from importlib import metadata as importlib_metadata
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from churn.model.artifact import (
    DEFAULT_VERSION,
    ModelMetadata,
    artifact_name,
    metadata_path_for,
    sha256_file,
    timestamp,
)
from churn.model.booster import TreeModel
from churn.model.training import (
    THRESHOLD_RULE,
    Progress,
    TrainingResult,
    fit,
    load_training_data,
    quiet,
)
from churn.monitoring.card import build_card, write_card
from churn.monitoring.profile import build_reference, input_columns
from churn.record.schema import FEATURE_NAMES, FEATURE_SPECS
from churn.scoring.scorer import Scorer

REFERENCE_SCORES = (
    "the out-of-fold scores of the training split and the final model's scores of the "
    "holdout: every training customer scored by a model that had not seen them"
)
_LIBRARIES = ("scikit-learn", "xgboost-cpu", "pandas", "numpy", "joblib", "bentoml")


def train(
    data: Path,
    out_dir: Path,
    *,
    seed: int = 42,
    version: str = DEFAULT_VERSION,
    progress: Progress = quiet,
) -> TrainingResult:
    loaded = load_training_data(data)
    progress(f"read {len(loaded.labels)} customers, {loaded.labels.mean():.1%} churned")
    fitted = fit(loaded, seed=seed, progress=progress)
    tree = TreeModel.from_pipeline(fitted.pipeline)
    threshold = fitted.threshold
    matrix = Scorer(tree, threshold).matrix
    progress("profiling the training data; the model card")
    reference = build_reference(
        matrix(pd.concat([fitted.train_features, fitted.test_features])),
        input_columns(tree),
        np.concatenate([fitted.train_scores, fitted.test_scores]),
        score_source=REFERENCE_SCORES,
    )
    test = fitted.test_features
    card = build_card(
        tree,
        matrix(test),
        fitted.test_labels,
        fitted.test_scores,
        threshold,
        {"Geography": test["Geography"].astype(str).to_numpy(), **fitted.test_groups},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / artifact_name(version)
    joblib.dump(fitted.pipeline, model_path)
    metadata = ModelMetadata(
        model_version=version,
        trained_at=timestamp(),
        seed=seed,
        artifact_file=model_path.name,
        artifact_sha256=sha256_file(model_path),
        data_file=data.name,
        data_sha256=sha256_file(data),
        data_rows=len(loaded.labels),
        threshold=threshold,
        threshold_rule=THRESHOLD_RULE,
        metrics=fitted.metrics,
        libraries=library_versions(),
        features=list(FEATURE_NAMES),
        feature_schema=[spec.as_json() for spec in FEATURE_SPECS],
        # Stored in BentoML's model metadata, which takes no nulls.
        reference_profile=reference.model_dump(mode="json", exclude_none=True),
        model_card=card.model_dump(mode="json", exclude_none=True),
    )
    metadata.write(metadata_path_for(model_path))
    write_card(metadata, model_path)
    roc_auc = fitted.metrics.roc_auc
    progress(f"wrote {model_path} (ROC-AUC {roc_auc:.4f}, threshold {threshold})")
    return TrainingResult(model_path, metadata, tree)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions
