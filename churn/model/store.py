"""The model's way into, and out of, the BentoML model store.

A store entry holds no pickle. It holds `booster.ubj` (STORED_BOOSTER): XGBoost's own
UBJSON model with the input layout in one of its attributes (`churn.model.booster`),
everything scoring needs; and the model's metadata (`ModelMetadata`: threshold, label
rule, where it came from), with the booster file's SHA-256 beside it (`booster_sha256`).
Loading checks that digest first, then reads the file with XGBoost: no code runs, and
neither scikit-learn, SciPy nor joblib is imported. The service and the Spark
executors load exactly this, whether `churn train` made the model here or it was
imported from a pickle made elsewhere.

The entry is written with `bentoml.models.create`, the booster file written into it,
not with `bentoml.xgboost.save_model`: that one asks for the `xgboost` distribution's
version, and the project installs the slim `xgboost-cpu` (the same module, built
without CUDA), so it raises `PackageNotFoundError`. The full `xgboost` package's Linux
wheels are built with CUDA (and pull NVIDIA's NCCL on x86_64): a bigger service image,
not measured, for a helper that only writes a file and two YAML fields, so that trade is
not made. `bentoml.models.create` works with either package, and the file is ours to
define: the booster and its layout together, which `churn.model.booster` reads back.

The tag's version says which model is which in `bentoml models list`:
`churn_model:1.0-train-3f2a9c1e` (made by `churn train`) or
`churn_model:1.0-import-ab12cd34` (imported), the last part the start of the original
file's SHA-256; the labels repeat it for `bentoml models get`. CHURN_MODEL_TAG picks one.

Entries of the previous form (`saved_model.pkl`, bentoml.sklearn's pickle, beside the
booster file) are rewritten in this form by `migrate` (`make setup`), from their
verified booster file, without unpickling anything.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml

from churn.model.artifact import (
    MODEL_NAME,
    ModelMetadata,
    verified_bytes,
)
from churn.model.booster import TreeModel
from churn.record.errors import ModelIntegrityError

OWNER = "customer-analytics-retention"
STORED_BOOSTER = "booster.ubj"
BOOSTER_DIGEST = "booster_sha256"
# The previous form's pickle (bentoml.sklearn's name for it) and its recorded digest.
LEGACY_PICKLE = "saved_model.pkl"
LEGACY_DIGEST = "stored_sha256"
# Recorded beside the model's own metadata, not part of it.
STORE_DIGESTS = (LEGACY_DIGEST, BOOSTER_DIGEST)
_NOT_IN_TAG = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class LoadedModel:
    tree: TreeModel
    metadata: ModelMetadata
    tag: str


def source_sha256(metadata: ModelMetadata) -> str:
    """The digest of the file the model came from: the imported pickle, or the joblib
    file `churn train` wrote."""
    if metadata.provenance is not None:
        return metadata.provenance.source_sha256
    return metadata.artifact_sha256


def _origin(metadata: ModelMetadata) -> str:
    return "train" if metadata.provenance is None else "import"


def labels_for(metadata: ModelMetadata) -> dict[str, str]:
    return {
        "owner": OWNER,
        "model_version": metadata.model_version,
        "framework": "xgboost",
        "task": "churn-classification",
        "origin": "churn-train" if metadata.provenance is None else "imported",
        "source_file": metadata.artifact_file,
        "source_sha256": source_sha256(metadata),
        "label_rule": metadata.label_rule,
    }


def _version_for(metadata: ModelMetadata) -> str:
    """A new tag version: MODEL_VERSION-ORIGIN-DIGEST8, numbered if that one exists."""
    version = _NOT_IN_TAG.sub("-", metadata.model_version.lower()).strip("-._") or "0"
    base = f"{version[:40]}-{_origin(metadata)}-{source_sha256(metadata)[:8]}"
    taken = {str(model.tag.version) for model in _entries()}
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def _entries() -> list[bentoml.Model]:
    try:
        return list(bentoml.models.list(MODEL_NAME))
    except bentoml.exceptions.NotFound:
        return []


def save_tree_model(
    tree: TreeModel, metadata: ModelMetadata, *, labels: dict[str, str] | None = None
) -> bentoml.Model:
    """A new store entry: the booster file with its layout, the metadata, its digest."""
    data = tree.to_bytes()
    recorded = {**metadata.stored(), BOOSTER_DIGEST: hashlib.sha256(data).hexdigest()}
    with bentoml.models.create(
        bentoml.Tag(MODEL_NAME, _version_for(metadata)),
        module=__name__,
        labels={**labels_for(metadata), **(labels or {})},
        metadata=recorded,
    ) as model:
        Path(model.path_of(STORED_BOOSTER)).write_bytes(data)
    return bentoml.models.get(model.tag)


def save_once(
    tree: TreeModel, metadata: ModelMetadata, *, force: bool = False
) -> tuple[bentoml.Model, bool]:
    """The entry made from the same file (`source_sha256`) if there is one, unless
    `force`; otherwise a new one. Returns it and whether it is new."""
    existing = None if force else find_imported(source_sha256(metadata))
    if existing is not None:
        return existing, False
    return save_tree_model(tree, metadata), True


def find_imported(source_sha256: str) -> bentoml.Model | None:
    """The newest stored model made from exactly this file (its SHA-256), if any."""
    wanted = source_sha256.strip().lower()
    for model in sorted(_entries(), key=lambda m: m.info.creation_time, reverse=True):
        recorded = model.info.metadata
        provenance = recorded.get("provenance")
        if isinstance(provenance, dict):
            found = provenance.get("source_sha256")
        else:
            found = recorded.get("artifact_sha256")
        if found == wanted:
            return model
    return None


def load_model(tag: str = f"{MODEL_NAME}:latest") -> LoadedModel:
    """The model from the store, read only after its digest matched."""
    return load_stored(verify_stored(tag))


def verify_stored(tag: str) -> bentoml.Model:
    """Check that the stored model exists and its booster file is intact; loads nothing."""
    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as error:
        raise ModelIntegrityError(
            f"Model {tag} is not in the BentoML model store; run `make setup` or "
            "`churn import-model models/churn_prediction_model_v1_0.joblib`."
        ) from error
    _booster_bytes(model)
    return model


def _booster_bytes(model: bentoml.Model) -> bytes:
    expected = model.info.metadata.get(BOOSTER_DIGEST)
    if not expected:
        raise ModelIntegrityError(
            f"Model {model.tag} has no booster file with a recorded digest (an entry of an "
            "older form); import its joblib file again with `churn import-model`."
        )
    return verified_bytes(Path(model.path_of(STORED_BOOSTER)), str(expected))


def load_stored(model: bentoml.Model) -> LoadedModel:
    tree = TreeModel.from_bytes(_booster_bytes(model))
    return LoadedModel(tree, stored_model_metadata(model), str(model.tag))


def stored_model_metadata(model: bentoml.Model) -> ModelMetadata:
    """The model's own metadata, without the digests the store records beside it."""
    recorded: dict[str, Any] = dict(model.info.metadata)
    for key in STORE_DIGESTS:
        recorded.pop(key, None)
    return ModelMetadata.model_validate(recorded)


@dataclass(frozen=True)
class Migrated:
    old: str
    new: str | None  # None: left as it was (`reason` says why)
    reason: str = ""


def migrate() -> list[Migrated]:
    """Rewrite every entry of the previous form (a pickle beside the booster file) in
    this one, from its booster file once its digest verifies; nothing is unpickled.

    The old entry is deleted once the new one is written; an entry whose booster file
    is missing or fails its digest is left, and reported.
    """
    done: list[Migrated] = []
    for model in sorted(_entries(), key=lambda m: m.info.creation_time):
        if not Path(model.path_of(LEGACY_PICKLE)).exists():
            continue
        try:
            loaded = load_stored(model)
        except ModelIntegrityError as error:
            done.append(Migrated(str(model.tag), None, error.message))
            continue
        new = save_tree_model(loaded.tree, loaded.metadata)
        bentoml.models.delete(model.tag)
        done.append(Migrated(str(model.tag), str(new.tag)))
    return done
