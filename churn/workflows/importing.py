"""`churn import-model`: a joblib pipeline, made here or elsewhere, into the model store.

`churn.model.importing` verifies the file and exports the pipeline to XGBoost's own
model in the environment that made it (its docstring: trust, libraries, the export, the
label rule, categories). Here the exported model must answer as the pipeline did
through the service's own `Scorer` (parity), and with `--reference-data` it gets that
data's reference profile and model card (`churn.monitoring`), before it is stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import numpy as np

from churn.model.artifact import Parity, Provenance, timestamp
from churn.model.booster import TreeModel
from churn.model.environments import default_cache, python_of
from churn.model.importing import (
    Exported,
    Probe,
    decision,
    export,
    libraries_of,
    made_with,
    made_with_libraries,
    metadata_of,
    probe_for,
    read_beside,
    tree_model,
    verified_model,
)
from churn.model.store import find_imported, save_tree_model
from churn.model.training import Progress, quiet
from churn.monitoring.card import build_card
from churn.monitoring.profile import build_reference
from churn.record.errors import ModelIntegrityError
from churn.record.outcome import LabelRule
from churn.scoring.scorer import SMALL_BATCH, Scorer

TOLERANCE = 1e-6


@dataclass(frozen=True)
class ImportResult:
    model: bentoml.Model
    imported: bool  # False: this file was already in the store
    parity: Parity | None = None


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
    progress: Progress = quiet,
) -> ImportResult:
    """Verify, export, check and store a joblib pipeline (see the module's docstring).

    Importing the same file again is a no-op unless `force`, so `make setup` may run
    any time.
    """
    data, digest = verified_model(model_path, sha256)
    if not force:
        existing = find_imported(digest)
        if existing is not None:
            return ImportResult(existing, imported=False)
    if threshold is not None and not 0 < threshold < 1:
        raise ModelIntegrityError(f"--threshold must lie between 0 and 1, not {threshold}.")
    pins = libraries_of(data, model_path.name, requirements)
    progress(
        f"{model_path.name}: SHA-256 verified; made with {pins.summary()}"
        + (" (read from the pickle)" if pins.guessed else f" (from {requirements})")
    )
    beside = read_beside(model_path, digest, progress)
    probe = probe_for(reference_data)
    python = python_of(pins, env_cache or default_cache(), wheelhouse=wheelhouse, progress=progress)
    started = time.monotonic()
    exported, raw = export(python, data, probe)
    progress(f"exported in {time.monotonic() - started:.1f} s with {made_with(exported)}")
    tree = tree_model(raw, exported)
    chosen, rule, why = decision(threshold, beside)
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
        made_with=made_with_libraries(pins),
        exported_with=exported.versions,
        imported_at=timestamp(),
        parity=parity,
    )
    health = _health(tree, chosen, rule, probe)
    metadata = metadata_of(
        model_path, digest, version, chosen, rule, why, beside, provenance, health
    )
    stored = save_tree_model(tree, metadata)
    return ImportResult(stored, imported=True, parity=parity)


def _parity(
    tree: TreeModel,
    threshold: float,
    rule: LabelRule,
    probe: Probe,
    exported: Exported,
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


def _health(tree: TreeModel, threshold: float, rule: LabelRule, probe: Probe) -> dict[str, Any]:
    """The reference profile (and, with outcomes, the model card) of --reference-data."""
    if probe.generated:
        return {}
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
