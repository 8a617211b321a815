"""The model's way into, and out of, the BentoML model store.

Import verifies the joblib file's SHA-256 before unpickling it, then saves it with
`bentoml.sklearn.save_model`, which writes its own pickle of the pipeline into the
store. The digest of that stored pickle is recorded in the model's metadata
(`stored_sha256`), so that the service, too, verifies the bytes before it unpickles them.
Beside it goes the booster with its input columns (`churn.model.booster`), a file that
is not a pickle, with its digest (`booster_sha256`): what a Spark executor scores with.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bentoml

from churn.model.artifact import (
    MODEL_NAME,
    ModelMetadata,
    load_verified,
    metadata_path_for,
    sha256_file,
    verify,
)
from churn.record.errors import ModelIntegrityError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

OWNER = "customer-analytics-retention"
STORED_FILE = "saved_model.pkl"  # the name bentoml.sklearn gives its pickle
STORED_BOOSTER = "booster.ubj"
# Recorded beside the model's own metadata, not part of it.
STORE_DIGESTS = ("stored_sha256", "booster_sha256")


@dataclass(frozen=True)
class LoadedModel:
    pipeline: Pipeline
    metadata: ModelMetadata
    tag: str


def labels_for(metadata: ModelMetadata) -> dict[str, str]:
    return {
        "owner": OWNER,
        "model_version": metadata.model_version,
        "framework": "xgboost",
        "task": "churn-classification",
    }


def find_imported(artifact_sha256: str) -> bentoml.Model | None:
    """The newest stored model imported from exactly this joblib file, if any."""
    try:
        candidates = bentoml.models.list(MODEL_NAME)
    except bentoml.exceptions.NotFound:
        return None
    for model in sorted(candidates, key=lambda m: m.info.creation_time, reverse=True):
        if model.info.metadata.get("artifact_sha256") == artifact_sha256:
            return model
    return None


def import_model(
    model_path: Path,
    *,
    metadata_path: Path | None = None,
    sha256: str | None = None,
    force: bool = False,
) -> tuple[bentoml.Model, bool]:
    """Verify a joblib pipeline against its recorded digest and save it into the store.

    Returns the stored model and whether it was newly imported: importing the same
    file again is a no-op unless `force` is set, so `make setup` can run any time.
    """
    metadata = ModelMetadata.read(metadata_path or metadata_path_for(model_path))
    expected = (sha256 or metadata.artifact_sha256).strip().lower()
    verify(model_path, expected)
    if sha256 and not hmac.compare_digest(expected, metadata.artifact_sha256):
        raise ModelIntegrityError(
            f"The --sha256 given matches the file but not its metadata "
            f"({metadata.artifact_sha256}); the metadata describes another model."
        )
    existing = None if force else find_imported(expected)
    if existing is not None:
        if not existing.info.metadata.get("booster_sha256"):  # imported before it existed
            _store_booster(existing, load_stored(existing).pipeline)
        return existing, False
    pipeline = load_verified(model_path, expected)
    from sklearn.pipeline import Pipeline  # loaded by now: the pickle names it

    if not isinstance(pipeline, Pipeline):
        raise ModelIntegrityError(
            f"{model_path.name} holds a {type(pipeline).__name__}, not a scikit-learn Pipeline."
        )
    saved = bentoml.sklearn.save_model(
        MODEL_NAME,
        pipeline,
        signatures={"predict_proba": {"batchable": True, "batch_dim": 0}},
        labels=labels_for(metadata),
        metadata=metadata.model_dump(mode="json"),
    )
    stored = bentoml.models.get(saved.tag)
    stored.info.metadata["stored_sha256"] = sha256_file(Path(stored.path_of(STORED_FILE)))
    _store_booster(stored, pipeline)
    return stored, True


def _store_booster(model: bentoml.Model, pipeline: Pipeline) -> None:
    from churn.model.booster import TreeModel

    data = TreeModel.from_pipeline(pipeline).to_bytes()
    Path(model.path_of(STORED_BOOSTER)).write_bytes(data)
    model.info.metadata["booster_sha256"] = hashlib.sha256(data).hexdigest()
    model.flush()


def load_model(tag: str = f"{MODEL_NAME}:latest") -> LoadedModel:
    """The pipeline from the store, unpickled only after its digest matched."""
    return load_stored(verify_stored(tag))


def _recorded_digest(model: bentoml.Model) -> str:
    expected = model.info.metadata.get("stored_sha256")
    if not expected:
        raise ModelIntegrityError(
            f"Model {model.tag} has no recorded digest; import it with `churn import-model`."
        )
    return str(expected)


def verify_stored(tag: str) -> bentoml.Model:
    """Check that the stored model exists and is intact, without unpickling it."""
    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as error:
        raise ModelIntegrityError(
            f"Model {tag} is not in the BentoML model store; run `make setup` or "
            "`churn import-model models/churn_prediction_model_v1_0.joblib`."
        ) from error
    verify(Path(model.path_of(STORED_FILE)), _recorded_digest(model))
    return model


def load_stored(model: bentoml.Model) -> LoadedModel:
    pipeline = load_verified(Path(model.path_of(STORED_FILE)), _recorded_digest(model))
    return LoadedModel(pipeline, stored_model_metadata(model), str(model.tag))


def stored_model_metadata(model: bentoml.Model) -> ModelMetadata:
    """The model's own metadata, without the digests the store records beside it."""
    recorded: dict[str, Any] = dict(model.info.metadata)
    for key in STORE_DIGESTS:
        recorded.pop(key, None)
    return ModelMetadata.model_validate(recorded)
