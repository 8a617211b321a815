"""`churn drift FILE`: a file of customers against the training data, and an Evidently report.

The file's customers are scored by the model and binned exactly as the service bins
what it scores (`churn.monitoring.profile.Binner`), so the PSI printed here is the
service's statistic on the same customers. The Evidently report compares the same bins:
Evidently (an optional extra, `health`) gets the training data and the file as each
customer's bin per feature, rebuilt from the counts, and its own PSI test, with the
same smoothing of empty bins and the drift threshold, reports the same figures, drawn
as Evidently draws them. The training data itself is never needed: the model's
metadata holds its bins and counts.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from churn.model.store import LoadedModel
from churn.monitoring.drift import DRIFT_PSI, THRESHOLDS, compare
from churn.monitoring.files import customer_batches
from churn.monitoring.profile import Binner, ReferenceProfile, input_columns, reference_of
from churn.record.answers import Thresholds, WindowDrift
from churn.record.errors import SHOWN_PROBLEMS, ChurnError, Problem
from churn.scoring.scorer import Scorer


class EvidentlyMissing(ChurnError):
    code = "evidently_missing"


class FileDrift(BaseModel):
    file: str
    model: str
    model_version: str
    rows: int
    rejected: int
    thresholds: Thresholds = THRESHOLDS
    drift: WindowDrift

    def summary(self) -> dict[str, Any]:
        """What `churn drift` prints: the file, its rows, and PSI and status per feature."""
        return {
            "file": self.file,
            "model": self.model,
            "model_version": self.model_version,
            "rows": self.rows,
            "rejected": self.rejected,
            **self.drift.summary(),
            "thresholds": self.thresholds.model_dump(),
        }


def file_drift(
    path: Path, loaded: LoadedModel
) -> tuple[FileDrift, dict[str, np.ndarray], list[Problem]]:
    """The file's drift, its counts per bin, and the first problems of rejected rows."""
    profile = reference_of(loaded.metadata)
    scorer = Scorer(loaded.pipeline, loaded.metadata.threshold)
    binner = Binner(profile, input_columns(loaded.pipeline))
    counts = np.zeros(binner.width, dtype=np.int64)
    rows = rejected = 0
    problems: list[Problem] = []
    for batch in customer_batches(path):
        rows += batch.row_count
        rejected += len(batch.rejected_rows)
        problems += batch.problems[: SHOWN_PROBLEMS - len(problems)]
        matrix = scorer.matrix(batch.features)
        counts += binner.counts(matrix, scorer.probabilities(matrix))
    per_bin = binner.split(counts)
    result = FileDrift(
        file=path.name,
        model=loaded.tag,
        model_version=loaded.metadata.model_version,
        rows=rows,
        rejected=rejected,
        drift=compare(profile, per_bin, binner.customers(counts)),
    )
    return result, per_bin, problems


def binned_frame(profile: ReferenceProfile, counts: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per customer, one column per feature (and the score): the customer's bin.

    Rebuilt from the counts: each column on its own, which is all a per-column drift
    test reads. Bins are numbered so that Evidently's charts keep their order.
    """
    columns = {}
    for bins in profile.all_bins():
        labels = [f"{i:02d}. {label}" for i, label in enumerate(bins.labels(), start=1)]
        columns[bins.name] = pd.Categorical(
            np.repeat(labels, np.asarray(counts[bins.name], dtype=np.int64)), categories=labels
        )
    return pd.DataFrame(columns)


def write_evidently_report(
    profile: ReferenceProfile, counts: dict[str, np.ndarray], out: Path
) -> dict[str, float]:
    """Evidently's data drift report of the counts against the profile, written to `out`.

    Returns Evidently's own PSI per column, which the tests hold against ours.
    """
    evidently = _evidently()
    reference = binned_frame(profile, {b.name: np.asarray(b.counts) for b in profile.all_bins()})
    current = binned_frame(profile, counts)
    definition = evidently.DataDefinition(categorical_columns=list(reference.columns))
    report = evidently.Report([evidently.DataDriftPreset(method="psi", threshold=DRIFT_PSI)])
    with warnings.catch_warnings():
        # Evidently's own deprecations, nothing this project calls.
        warnings.simplefilter("ignore")
        snapshot = report.run(
            current_data=evidently.Dataset.from_pandas(current, data_definition=definition),
            reference_data=evidently.Dataset.from_pandas(reference, data_definition=definition),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out))
    return {
        metric["config"]["column"]: float(metric["value"])
        for metric in snapshot.dict()["metrics"]
        if metric["config"].get("type", "").endswith(":ValueDrift")
    }


class _Evidently:
    def __init__(self) -> None:
        with warnings.catch_warnings():
            # Its imports warn of their own dependencies' deprecations (plotly, litestar).
            warnings.simplefilter("ignore")
            _pandas_3_shim()
            from evidently import DataDefinition, Dataset, Report
            from evidently.presets import DataDriftPreset
        self.DataDefinition = DataDefinition
        self.Dataset = Dataset
        self.Report = Report
        self.DataDriftPreset = DataDriftPreset


def _evidently() -> _Evidently:
    try:
        return _Evidently()
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("evidently"):
            raise
        raise EvidentlyMissing(
            "The drift report needs Evidently, the optional extra 'health': "
            "`uv sync --extra health` (or `pip install 'churn[health]'`)."
        ) from None


def _pandas_3_shim() -> None:
    # Evidently 0.7.23 (the newest) imports a helper pandas 3 removed, for a check this
    # report does not run (legacy TestColumnsType); its pandas 2 meaning, for its import.
    import pandas.core.dtypes.common as common

    if not hasattr(common, "infer_dtype_from_object"):
        common.infer_dtype_from_object = lambda dtype: pd.api.types.pandas_dtype(dtype).type  # type: ignore[attr-defined]
