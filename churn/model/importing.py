"""`churn import-model`: a joblib pipeline, made here or elsewhere, into the model store.

The store entry holds no pickle (`churn.model.store`): this module turns the pickle
into XGBoost's own model and the input layout, and proves they answer as the pipeline
did, before anything is stored.

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
4. Parity. The booster and layout, through the service's own `Scorer` (both its paths:
   NumPy's tree walk for one customer and small batches, XGBoost for large ones), must
   give every probe customer the same label and a probability within 1e-6. The figures
   are printed and kept in the metadata (`Provenance.parity`); otherwise nothing is
   stored. The probe: `--reference-data`, or `probe_customers`: synthetic customers
   like the bank's and customers spread over the schema's whole range, every category,
   and each bound.
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

import datetime as dt
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pandas as pd
import xgboost
from pydantic import BaseModel, ConfigDict, ValidationError

from churn.model.artifact import (
    DEFAULT_VERSION,
    MODELS_DIR,
    ModelMetadata,
    Parity,
    Provenance,
    metadata_path_for,
    verified_bytes,
)
from churn.model.booster import Column, TreeModel
from churn.model.environments import Pins, default_cache, pins_for, python_of
from churn.model.pickle_scan import scan
from churn.model.store import find_imported, save_tree_model
from churn.model.synth import synthesize
from churn.record.errors import ModelIntegrityError
from churn.record.outcome import LabelRule
from churn.record.schema import FEATURE_NAMES, FEATURE_SPECS
from churn.scoring.scorer import SMALL_BATCH, Scorer

# The digests the project vouches for, kept outside the models' folder, of the files in
# it: `make import` needs no --sha256 for the bundled model.
RECORDED_DIGESTS: dict[str, str] = {
    "churn_prediction_model_v1_0.joblib": (
        "465a8525578d5cc51597d508f7d7849ea43ea5feda47732e15259cca2c6612a5"
    ),
}
TOLERANCE = 1e-6
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
Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True)
class ImportResult:
    model: bentoml.Model
    imported: bool  # False: this file was already in the store
    parity: Parity | None = None


class _Exported(BaseModel):
    """exporter.py's export.json."""

    model_config = ConfigDict(frozen=True)

    booster_format: str
    columns: list[tuple[str, str | None]]
    steps: list[tuple[str, str | None]]
    versions: dict[str, str]
    probabilities: list[float]
    labels: list[int]


@dataclass(frozen=True)
class _Probe:
    features: pd.DataFrame
    outcomes: np.ndarray | None  # Exited, when the reference data has it
    description: str
    generated: bool


def import_model(
    model_path: Path,
    *,
    sha256: str | None = None,
    requirements: Path | None = None,
    threshold: float | None = None,
    version: str | None = None,
    reference_data: Path | None = None,
    force: bool = False,
    env_cache: Path | None = None,
    wheelhouse: Path | None = None,
    progress: Progress = _quiet,
) -> ImportResult:
    """Verify, export, check and store a joblib pipeline (see the module's docstring).

    Importing the same file again is a no-op unless `force`, so `make setup` may run
    any time.
    """
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
    digest = anchor.strip().lower()
    if not force:
        existing = find_imported(digest)
        if existing is not None:
            return ImportResult(existing, imported=False)
    if threshold is not None and not 0 < threshold < 1:
        raise ModelIntegrityError(f"--threshold must lie between 0 and 1, not {threshold}.")
    contents = scan(data)
    if not contents.xgboost_versions:
        classes = sorted(
            name.rsplit(".", 1)[1] for name in contents.names if name.startswith("sklearn.")
        )
        raise ModelIntegrityError(
            f"Not imported: {model_path.name} holds no XGBoost model (it names "
            f"{', '.join(classes) or 'no scikit-learn class'}); only a pipeline that ends in "
            "XGBoost's XGBClassifier can be served."
        )
    pins = pins_for(contents, requirements)
    progress(
        f"{model_path.name}: SHA-256 verified; made with {pins.summary()}"
        + (" (read from the pickle)" if pins.guessed else f" (from {requirements})")
    )
    beside = _beside(model_path, digest, progress)
    probe = _probe(reference_data)
    python = python_of(pins, env_cache or default_cache(), wheelhouse=wheelhouse, progress=progress)
    started = time.monotonic()
    exported, raw = _export(python, data, probe)
    progress(f"exported in {time.monotonic() - started:.1f} s with {_made_with(exported)}")
    tree = _tree_model(raw, exported)
    chosen, rule, why = _decision(threshold, beside)
    parity = _parity(tree, chosen, rule, probe, exported)
    progress(
        f"parity on {parity.customers:,} customers ({parity.probe}): {parity.labels_differ} "
        f"labels differ, largest probability difference {parity.max_abs_probability_diff:.2e} "
        f"(tolerance {parity.tolerance:g})"
    )
    if parity.labels_differ or parity.max_abs_probability_diff > TOLERANCE:
        raise ModelIntegrityError(
            f"Not stored: the exported model does not answer as {model_path.name} did on "
            f"{parity.customers:,} customers ({parity.labels_differ} labels differ, largest "
            f"probability difference {parity.max_abs_probability_diff:.2e}, allowed "
            f"{TOLERANCE:g})."
        )
    provenance = Provenance(
        source_file=model_path.name,
        source_sha256=digest,
        made_with=_made_with_libraries(pins),
        exported_with=exported.versions,
        imported_at=_now(),
        parity=parity,
    )
    metadata = _metadata(
        model_path, digest, version, chosen, rule, why, beside, provenance, tree, probe
    )
    stored = save_tree_model(tree, metadata)
    return ImportResult(stored, imported=True, parity=parity)


def recorded_digest(model_path: Path) -> str | None:
    """The digest the project records for a file in its models folder, if any."""
    if model_path.resolve().parent != MODELS_DIR:
        return None
    return RECORDED_DIGESTS.get(model_path.name)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def version_from_name(name: str) -> str | None:
    """`churn_prediction_model_v1_0.joblib` -> "1.0"."""
    match = re.search(r"_v(\d+(?:_\d+)*)(?:\.[^.]*)?$", name)
    return match.group(1).replace("_", ".") if match else None


def _beside(model_path: Path, digest: str, progress: Progress) -> ModelMetadata | None:
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


def _probe(reference_data: Path | None) -> _Probe:
    if reference_data is None:
        return _Probe(
            probe_customers(), None, "generated: every category and each feature's range", True
        )
    from churn.model.training import read_customers

    loaded = read_customers(reference_data, labels_required=False)
    return _Probe(loaded.features, loaded.labels, f"reference data {reference_data.name}", False)


# The export -----------------------------------------------------------------------------


def _export(python: Path, data: bytes, probe: _Probe) -> tuple[_Exported, bytes]:
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
        exported = _Exported.model_validate_json((folder / "export.json").read_bytes())
        raw = (folder / f"booster.{exported.booster_format}").read_bytes()
    if len(exported.probabilities) != len(probe.features) or len(exported.labels) != len(
        probe.features
    ):
        raise ModelIntegrityError("The exporter answered for another number of customers.")
    return exported, raw


def _made_with(exported: _Exported) -> str:
    versions = exported.versions
    return (
        f"scikit-learn {versions.get('scikit-learn')}, "
        + "XGBoost "
        + (versions.get("xgboost") or versions.get("xgboost-cpu") or "?")
    )


def _made_with_libraries(pins: Pins) -> dict[str, str]:
    """The libraries that made the pickle, as it records them (or --requirements pins)."""
    return {"scikit-learn": pins.sklearn, "xgboost": pins.xgboost}


def _tree_model(raw: bytes, exported: _Exported) -> TreeModel:
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


# The decision and parity -----------------------------------------------------------------


def _decision(
    threshold: float | None, beside: ModelMetadata | None
) -> tuple[float, LabelRule, str]:
    if threshold is not None:
        return threshold, ">=", GIVEN_RULE
    if beside is not None:
        return beside.threshold, beside.label_rule, beside.threshold_rule
    return 0.5, ">", XGBOOST_RULE


def _parity(
    tree: TreeModel,
    threshold: float,
    rule: LabelRule,
    probe: _Probe,
    exported: _Exported,
) -> Parity:
    """The service's answers against the pipeline's, on every path the Scorer has."""
    scorer = Scorer(tree, threshold, label_rule=rule)
    matrix = scorer.matrix(probe.features)
    expected = np.asarray(exported.probabilities, dtype=np.float64)
    if (threshold, rule) == (0.5, ">"):  # predict()'s own labels
        expected_labels = np.asarray(exported.labels) == 1
    else:  # another threshold (--threshold, churn train's): the pipeline's scores, labelled
        expected_labels = expected >= threshold if rule == ">=" else expected > threshold
    one_by_one = np.concatenate(
        [scorer.probabilities(matrix[i : i + 1], observe=False) for i in range(len(matrix))]
    )
    small = np.concatenate(
        [
            scorer.probabilities(matrix[i : i + SMALL_BATCH], observe=False)
            for i in range(0, len(matrix), SMALL_BATCH)
        ]
    )
    whole = scorer.probabilities(matrix, observe=False)
    if len(matrix) <= SMALL_BATCH:  # too few for XGBoost's path: ask it directly
        whole = np.asarray(tree.booster.inplace_predict(matrix), dtype=np.float64)
    differ = 0
    largest = 0.0
    for scores in (one_by_one, small, whole):
        differ = max(differ, int(np.count_nonzero(scorer.labels(scores) != expected_labels)))
        largest = max(largest, float(np.max(np.abs(scores - expected), initial=0.0)))
    return Parity(
        customers=len(matrix),
        probe=probe.description,
        labels_differ=differ,
        max_abs_probability_diff=largest,
        tolerance=TOLERANCE,
    )


# The metadata -----------------------------------------------------------------------------


def _metadata(
    model_path: Path,
    digest: str,
    version: str | None,
    threshold: float,
    rule: LabelRule,
    why: str,
    beside: ModelMetadata | None,
    provenance: Provenance,
    tree: TreeModel,
    probe: _Probe,
) -> ModelMetadata:
    """What the store keeps: a file `churn train` made (its metadata beside it records
    this digest) is kept as `churn train` keeps it, its own metadata without provenance;
    a file made elsewhere gets its provenance, parity included."""
    health = {key: value for key, value in _health(tree, threshold, rule, probe).items() if value}
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


def _health(tree: TreeModel, threshold: float, rule: LabelRule, probe: _Probe) -> dict[str, Any]:
    """The reference profile (and, with outcomes, the model card) of --reference-data."""
    if probe.generated:
        return {}
    from churn.monitoring.card import build_card
    from churn.monitoring.profile import build_reference

    scorer = Scorer(tree, threshold, label_rule=rule)
    matrix = scorer.matrix(probe.features)
    scores = scorer.probabilities(matrix, observe=False)
    columns = [column.name for column in tree.columns]
    reference = build_reference(
        matrix, columns, scores, score_source=f"the imported model's scores of {probe.description}"
    )
    health: dict[str, Any] = {
        "reference_profile": reference.model_dump(mode="json", exclude_none=True)
    }
    if probe.outcomes is not None:
        card = build_card(
            tree, matrix, probe.outcomes, scores, threshold,
            {"Geography": probe.features["Geography"].astype(str).to_numpy()}, rule,
        )  # fmt: skip
        health["model_card"] = card.model_dump(mode="json", exclude_none=True)
    return health
