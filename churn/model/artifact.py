"""The model artifact on disk: its metadata, its checksum, and the only way to load it.

A joblib file is a pickle, and unpickling runs code. `load_verified` is therefore the
one place that calls `joblib.load`, and it does so only after the file's SHA-256 has
matched the digest recorded when the model was trained (or one given explicitly).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from churn.record.errors import ModelIntegrityError

MODEL_NAME = "churn_model"
DEFAULT_VERSION = "1.0"
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


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
    """Everything recorded beside the joblib file; also the model's BentoML metadata."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model_name: str = MODEL_NAME
    model_version: str
    trained_at: str
    seed: int
    artifact_file: str
    artifact_sha256: str
    data_file: str
    data_sha256: str
    data_rows: int
    threshold: float
    threshold_rule: str
    metrics: Metrics
    libraries: dict[str, str]
    features: list[str]
    feature_schema: list[dict[str, Any]]
    # Model health (churn.monitoring): the training data's profile that drift is measured
    # against, and the model card's figures. Empty for models trained before them.
    reference_profile: dict[str, Any] = Field(default_factory=dict)
    model_card: dict[str, Any] = Field(default_factory=dict)

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
