"""A joblib pipeline, made here or elsewhere, turned into what the model store keeps.

The store entry holds no pickle (`churn.model.store`): this module verifies the file,
turns the pickle into XGBoost's own model and the input layout, and writes the
metadata. The import job (`churn.workflows.importing`, `churn import-model`) composes
it with the parity check through the service's `Scorer` and the model's health
(reference profile, model card), before anything is stored.

1. Trust. The file is read once; its SHA-256 must match an anchor from outside its
   folder: `--sha256`, or the digest the project records for its bundled model
   (`RECORDED_DIGESTS`). A metadata file beside the model is no anchor (whoever can
   change the file can change it too); with no anchor the import is refused. The bytes
   checked are the bytes handed on: nothing opens the path again.
2. Which libraries made it: read from the pickle without running it
   (`churn.model.pickle_scan`), or from `--requirements`.
3. Where it is unpickled: in another process, in an environment of those libraries
   (`churn.model.environments`), by `churn/model/exporter.py`, which receives the bytes
   on its standard input and writes the booster, the layout and the pipeline's own
   `predict_proba` and `predict` on a probe set into a private folder (0700).
4. Parity (`churn.workflows.importing`). The booster and layout, through the service's
   own `Scorer` (both its paths: NumPy's tree walk for one customer and small batches,
   XGBoost for large ones), must give every probe customer the same label and a
   probability within 1e-6. The figures are printed and kept in the metadata
   (`Provenance.parity`); otherwise nothing is stored. The probe: `--reference-data`, or
   `probe_customers`: synthetic customers like the bank's and customers spread over the
   schema's whole range, every category, and each bound.
5. The label rule: what the pipeline's `predict` did (XGBoost: churn when the
   probability is above 0.5, strictly), unless `--threshold` (churn at or above it).
6. Categories (decided in exporter.py, which gets the schema's): a category the
   encoder knows and the schema has not (a new country) is refused, naming it: the
   schema is the one definition of a customer for the service, its CSV reader, the UI
   and Spark, and changing it is a change to review, not a side effect of an import. A
   schema category the encoder does not know is scored as the pipeline did (all its
   one-hot columns 0) if the encoder ignored unknown categories, and refused if it
   raised an error for them.

If `NAME.metadata.json` beside the file (as `churn train` writes it) records the same
SHA-256 as the file, the file is one `churn train` made, and it is stored as `churn
train` stores it: that metadata (threshold and its rule, training metrics, reference
profile, model card, training data's name and digest: numbers and text, never code),
without provenance, once the parity check passed. The trust in the pickle never rests
on it: the digest was checked against the anchor first.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost
from pydantic import BaseModel, ConfigDict, ValidationError

from churn.model.artifact import (
    DEFAULT_VERSION,
    MODELS_DIR,
    ModelMetadata,
    Provenance,
    metadata_path_for,
    verified_bytes,
)
from churn.model.booster import Column, TreeModel
from churn.model.environments import Pins, pins_for
from churn.model.pickle_scan import scan
from churn.model.synth import synthesize
from churn.model.training import Progress, read_customers
from churn.record.errors import ModelIntegrityError
from churn.record.outcome import LabelRule
from churn.record.schema import FEATURE_NAMES, FEATURE_SPECS

# The digests the project vouches for, kept outside the models' folder, of the files in
# it: `make import` needs no --sha256 for the bundled model.
RECORDED_DIGESTS: dict[str, str] = {
    "churn_prediction_model_v1_0.joblib": (
        "465a8525578d5cc51597d508f7d7849ea43ea5feda47732e15259cca2c6612a5"
    ),
}
PROBE_ROWS = 3000
PROBE_SEED = 20260
XGBOOST_RULE = (
    "what the original pipeline's predict() did: XGBoost labels a customer churn when "
    "the probability is above 0.5 (strictly)"
)
GIVEN_RULE = "given at import (--threshold): churn at or above it"
_EXPORTER = Path(__file__).with_name("exporter.py")
_SCHEMA_CATEGORIES = {
    spec.name: list(spec.categories) for spec in FEATURE_SPECS if spec.kind == "category"
}
_EXPORT_TIMEOUT = 600
_REFUSED = 3  # exporter.py's exit status for a pipeline it will not export


class Exported(BaseModel):
    """exporter.py's export.json."""

    model_config = ConfigDict(frozen=True)

    booster_format: str
    columns: list[tuple[str, str | None]]
    steps: list[tuple[str, str | None]]
    versions: dict[str, str]
    probabilities: list[float]
    labels: list[int]


@dataclass(frozen=True)
class Probe:
    """The customers the exported model must answer for as the pipeline did."""

    features: pd.DataFrame
    outcomes: np.ndarray | None  # Exited, when the reference data has it
    description: str
    generated: bool


# Trust and provenance ---------------------------------------------------------------------


def verified_model(model_path: Path, sha256: str | None) -> tuple[bytes, str]:
    """The file's bytes and their SHA-256, once checked against the anchor: `sha256`, or
    the digest the project records (`recorded_digest`). Refused without an anchor."""
    anchor = sha256 or recorded_digest(model_path)
    if anchor is None:
        raise ModelIntegrityError(
            f"Nothing to check {model_path.name} against: give its SHA-256 with --sha256 "
            "(from whoever made the file, through another channel than the file's folder). "
            "A joblib file is a pickle, and loading an unverified one runs whatever code it "
            "holds; a metadata file beside it is no proof, since whoever can change the "
            "file can change that too."
        )
    try:
        data = verified_bytes(model_path, anchor)
    except ModelIntegrityError as error:
        if sha256 is None:  # the recorded digest: say where it comes from
            raise ModelIntegrityError(
                f"{error.message} The digest is the one the project records for its bundled "
                "model (churn.model.importing.RECORDED_DIGESTS); for a model you retrained "
                "there (make model), give the new one with --sha256 (churn train prints it), "
                "or `make import MODEL_SHA256=...`."
            ) from None
        raise
    return data, anchor.strip().lower()


def libraries_of(data: bytes, name: str, requirements: Path | None) -> Pins:
    """Which libraries made the pipeline: read from the pickle (without running it), or
    `requirements`'s pins. Refuses a file that holds no XGBoost model."""
    contents = scan(data)
    if not contents.xgboost_versions:
        classes = sorted(
            name.rsplit(".", 1)[1] for name in contents.names if name.startswith("sklearn.")
        )
        raise ModelIntegrityError(
            f"Not imported: {name} holds no XGBoost model (it names "
            f"{', '.join(classes) or 'no scikit-learn class'}); only a pipeline that ends in "
            "XGBoost's XGBClassifier can be served."
        )
    return pins_for(contents, requirements)


def recorded_digest(model_path: Path) -> str | None:
    """The digest the project records for a file in its models folder, if any."""
    if model_path.resolve().parent != MODELS_DIR:
        return None
    return RECORDED_DIGESTS.get(model_path.name)


def version_from_name(name: str) -> str | None:
    """`churn_prediction_model_v1_0.joblib` -> "1.0"."""
    match = re.search(r"_v(\d+(?:_\d+)*)(?:\.[^.]*)?$", name)
    return match.group(1).replace("_", ".") if match else None


def read_beside(model_path: Path, digest: str, progress: Progress) -> ModelMetadata | None:
    """The metadata `churn train` wrote beside the file, if it describes exactly this file."""
    path = metadata_path_for(model_path)
    if not path.is_file():
        return None
    try:
        metadata = ModelMetadata.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, OSError, UnicodeDecodeError):
        progress(f"{path.name} is not a model metadata file; not used")
        return None
    if metadata.artifact_sha256 != digest:
        progress(f"{path.name} describes another file ({metadata.artifact_sha256}); not used")
        return None
    progress(f"{path.name} records this file's SHA-256: its threshold, metrics and card are used")
    return metadata


# The probe ------------------------------------------------------------------------------


def probe_customers(rows: int = PROBE_ROWS, seed: int = PROBE_SEED) -> pd.DataFrame:
    """Customers that exercise a model over the schema's whole domain, the same each time:
    half like the bank's (`churn.model.synth`), half uniform over each feature's bounds,
    with every category, and every bound of every feature, present."""
    rng = np.random.default_rng(seed)
    typical = synthesize(rows // 2, seed=seed)[list(FEATURE_NAMES)]
    spread: dict[str, Any] = {}
    count = rows - len(typical)
    for spec in FEATURE_SPECS:
        if spec.kind == "category":
            values: Any = rng.choice(np.array(spec.categories), count)
        else:
            low, high = float(spec.minimum or 0), float(spec.maximum or 0)
            # Log-uniform for wide money ranges, so that the bank's range is not missed.
            if high > 1e6:
                values = np.round(np.expm1(rng.uniform(0, np.log1p(high), count)), 2)
            elif spec.kind == "integer":
                values = rng.integers(int(low), int(high) + 1, count)
            else:
                values = np.round(rng.uniform(low, high, count), 2)
            values[:2] = [low, high]
            if spec.kind == "integer":
                values = np.asarray(values, dtype=np.int64)
        spread[spec.name] = values
    frame = pd.concat([typical, pd.DataFrame(spread)], ignore_index=True)
    for spec in FEATURE_SPECS:
        if spec.kind == "category":  # each category with each other feature's bounds
            frame.loc[: len(spec.categories) - 1, spec.name] = list(spec.categories)
    return frame


def probe_for(reference_data: Path | None) -> Probe:
    """`--reference-data`'s customers, else generated ones (`probe_customers`)."""
    if reference_data is None:
        return Probe(
            probe_customers(), None, "generated: every category and each feature's range", True
        )
    loaded = read_customers(reference_data, labels_required=False)
    return Probe(loaded.features, loaded.labels, f"reference data {reference_data.name}", False)


# The export -----------------------------------------------------------------------------


def export(python: Path, data: bytes, probe: Probe) -> tuple[Exported, bytes]:
    """Run exporter.py in the model's environment, on exactly the verified bytes."""
    with tempfile.TemporaryDirectory(prefix="churn-import-") as scratch:  # mode 0700
        folder = Path(scratch)
        columns = {
            name: probe.features[name].tolist() for name in FEATURE_NAMES
        }  # JSON numbers round-trip float64 exactly
        (folder / "probe.json").write_text(
            json.dumps({"features": list(FEATURE_NAMES), "categories": _SCHEMA_CATEGORIES,
                        "columns": columns}),
            encoding="utf-8",
        )  # fmt: skip
        try:
            done = subprocess.run(
                [str(python), "-I", str(_EXPORTER), str(folder)],
                input=data,
                capture_output=True,
                timeout=_EXPORT_TIMEOUT,
                cwd=folder,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ModelIntegrityError(
                f"Exporting the model took over {_EXPORT_TIMEOUT} s; not stored."
            ) from None
        errors = done.stderr.decode("utf-8", "replace").strip().splitlines()
        if done.returncode == _REFUSED:
            reason = next((line for line in reversed(errors) if line.startswith("REFUSED: ")), "")
            raise ModelIntegrityError(f"Not imported: {reason.removeprefix('REFUSED: ')}")
        if done.returncode != 0:
            raise ModelIntegrityError(
                "Loading the model in the environment it was made in failed; nothing was "
                "stored. Its last words:\n  " + "\n  ".join(errors[-6:])
            )
        exported = Exported.model_validate_json((folder / "export.json").read_bytes())
        raw = (folder / f"booster.{exported.booster_format}").read_bytes()
    if len(exported.probabilities) != len(probe.features) or len(exported.labels) != len(
        probe.features
    ):
        raise ModelIntegrityError("The exporter answered for another number of customers.")
    return exported, raw


def made_with(exported: Exported) -> str:
    versions = exported.versions
    return (
        f"scikit-learn {versions.get('scikit-learn')}, "
        + "XGBoost "
        + (versions.get("xgboost") or versions.get("xgboost-cpu") or "?")
    )


def made_with_libraries(pins: Pins) -> dict[str, str]:
    """The libraries that made the pickle, as it records them (or --requirements pins)."""
    return {"scikit-learn": pins.sklearn, "xgboost": pins.xgboost}


def tree_model(raw: bytes, exported: Exported) -> TreeModel:
    columns = tuple(Column(feature, category) for feature, category in exported.columns)
    outside = {column.feature for column in columns} - set(FEATURE_NAMES)
    if outside:
        listed = ", ".join(sorted(outside))
        raise ModelIntegrityError(f"The model reads {listed}, which the schema has not.")
    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgboost.core.XGBoostError as error:
        raise ModelIntegrityError(f"XGBoost cannot read the exported model: {error}") from None
    if booster.num_features() != len(columns):
        raise ModelIntegrityError(
            f"The booster reads {booster.num_features()} columns, the layout has {len(columns)}."
        )
    return TreeModel(booster, columns)


# The decision -----------------------------------------------------------------


def decision(threshold: float | None, beside: ModelMetadata | None) -> tuple[float, LabelRule, str]:
    if threshold is not None:
        return threshold, ">=", GIVEN_RULE
    if beside is not None:
        return beside.threshold, beside.label_rule, beside.threshold_rule
    return 0.5, ">", XGBOOST_RULE


# The metadata -----------------------------------------------------------------------------


def metadata_of(
    model_path: Path,
    digest: str,
    version: str | None,
    threshold: float,
    rule: LabelRule,
    why: str,
    beside: ModelMetadata | None,
    provenance: Provenance,
    health: dict[str, Any],
) -> ModelMetadata:
    """What the store keeps: a file `churn train` made (its metadata beside it records
    this digest) is kept as `churn train` keeps it, its own metadata without provenance;
    a file made elsewhere gets its provenance, parity included. `health`: the reference
    profile and model card of --reference-data, if any."""
    health = {key: value for key, value in health.items() if value}
    decided = {"threshold": threshold, "threshold_rule": why, "label_rule": rule}
    if beside is not None:
        chosen = {"model_version": version} if version else {}
        return beside.model_copy(update={**decided, **health, **chosen})
    return ModelMetadata.model_validate(
        {
            **decided,
            **health,
            "model_version": version or version_from_name(model_path.name) or DEFAULT_VERSION,
            "artifact_file": model_path.name,
            "artifact_sha256": digest,
            "libraries": provenance.made_with,
            "features": list(FEATURE_NAMES),
            "feature_schema": [spec.as_json() for spec in FEATURE_SPECS],
            "provenance": provenance.model_dump(mode="json"),
        }
    )
