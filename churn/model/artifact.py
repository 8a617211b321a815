"""The model artifact on disk: its metadata, its checksum, and the only way to load it.

A joblib file is a pickle, and unpickling runs code. `load_verified` is therefore the
one place that calls `joblib.load`, and it does so only after the file's SHA-256 has
matched the digest recorded when the model was trained (or one given explicitly).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from churn.record.errors import ModelIntegrityError
from churn.record.outcome import LabelRule
from churn.record.provenance import Parity, Provenance, imported_origin, trained_origin

__all__ = ["LabelRule", "Metrics", "ModelMetadata", "Parity", "Provenance"]

MODEL_NAME = "churn_model"
DEFAULT_VERSION = "1.0"
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def timestamp() -> str:
    """Now, as a model's metadata records when it was trained or imported (UTC, seconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def artifact_name(version: str) -> str:
    """The file name the service has always used, e.g. churn_prediction_model_v1_0.joblib."""
    return f"churn_prediction_model_v{version.replace('.', '_')}.joblib"


def metadata_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".metadata.json")


class Metrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    roc_auc: float
    pr_auc: float
    precision: float
    recall: float
    f1: float
    brier: float
    churn_rate: float
    holdout_rows: int


class ModelMetadata(BaseModel):
    """Everything recorded about a model: beside `churn train`'s joblib file, and in its
    store entry (`churn.model.store`).

    A model imported from elsewhere has `provenance` and lacks what only training here
    knows (`trained_at`, `seed`, `data_*`, `metrics`); `artifact_file` and
    `artifact_sha256` are then the original file's.
    """

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model_name: str = MODEL_NAME
    model_version: str
    artifact_file: str
    artifact_sha256: str
    threshold: float
    threshold_rule: str
    # Churn at or above the threshold (">=", ours), or strictly above it (">": `predict()`).
    label_rule: LabelRule = ">="
    libraries: dict[str, str]
    features: list[str]
    feature_schema: list[dict[str, Any]]
    # Known only to a model `churn train` made here.
    trained_at: str | None = None
    seed: int | None = None
    data_file: str | None = None
    data_sha256: str | None = None
    data_rows: int | None = None
    metrics: Metrics | None = None
    provenance: Provenance | None = None
    # Model health (churn.monitoring): the training data's profile that drift is measured
    # against, and the model card's figures. Empty for a model that has none.
    reference_profile: dict[str, Any] = Field(default_factory=dict)
    model_card: dict[str, Any] = Field(default_factory=dict)

    def origin(self) -> str:
        """Where the model came from, in a sentence for people (/v2/model, the UI)."""
        if self.provenance is not None:
            return imported_origin(self.provenance)
        return trained_origin(self.data_file)

    def stored(self) -> dict[str, Any]:
        """As BentoML's model metadata keeps it: JSON values, no nulls."""
        return self.model_dump(mode="json", exclude_none=True)

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> ModelMetadata:
        if not path.is_file():
            raise ModelIntegrityError(f"Model metadata {path} is missing.")
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, expected_sha256: str) -> None:
    """Raise `ModelIntegrityError` unless the file exists and has the expected digest."""
    if not path.is_file():
        raise ModelIntegrityError(f"Model file {path} is missing.")
    expected = _digest(expected_sha256)
    _compare(path.name, sha256_file(path), expected, _PICKLE)


def verified_bytes(path: Path, expected_sha256: str) -> bytes:
    """The file's bytes, read once, if they have the expected digest."""
    expected = _digest(expected_sha256)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelIntegrityError(f"Model file {path} is missing.") from None
    _compare(path.name, hashlib.sha256(data).hexdigest(), expected, "")
    return data


def _digest(expected_sha256: str) -> str:
    expected = expected_sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ModelIntegrityError(f"{expected_sha256!r} is not a SHA-256 hex digest.")
    return expected


_PICKLE = "; a joblib file is a pickle and loading an unknown one runs arbitrary code"


def _compare(name: str, actual: str, expected: str, why: str) -> None:
    if not hmac.compare_digest(actual, expected):
        raise ModelIntegrityError(
            f"Refusing to load {name}: its SHA-256 is {actual}, expected {expected}. "
            f"The file was changed or replaced after it was recorded{why}."
        )


def load_verified(path: Path, expected_sha256: str) -> Any:
    verify(path, expected_sha256)
    import joblib  # here, so that what only checks digests never imports it

    return joblib.load(path)
