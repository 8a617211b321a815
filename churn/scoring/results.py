"""A batch's results as one table: each record scored or rejected, in file order.

The one definition of the rows a whole-file scoring writes: the file scorer behind
/v2/predict-file (`churn.scoring.files`) and the Spark pass (`churn.spark.job`) both
build their rows here, so a record gets the same answer, or the same reasons, in each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.record.outcome import ANSWER_DIGITS, BANDS, LABELS
from churn.record.schema import CUSTOMER_ID, FEATURE_SPECS

if TYPE_CHECKING:
    from churn.record.validation import CustomerBatch
    from churn.scoring.scorer import Scorer

# The columns of `results_table`, the features (with `features=True`) after them.
RESULT_COLUMNS = (
    "row",
    CUSTOMER_ID,
    "status",
    "churn_probability",
    "prediction",
    "risk_band",
    "errors",
)
# Each feature as a results table holds it: whole numbers, numbers, or text.
FEATURE_TYPES: dict[str, pa.DataType] = {
    spec.name: {"integer": pa.int64(), "number": pa.float64()}.get(spec.kind, pa.string())
    for spec in FEATURE_SPECS
}
STATUSES = pa.array(["scored", "rejected"])
LABEL_WORDS = pa.array(LABELS)
BAND_WORDS = pa.array(list(BANDS))


def words(vocabulary: pa.Array, codes: np.ndarray) -> pa.Array:
    """`vocabulary[code]` for each code, null for -1: string columns without Python lists."""
    indices = pa.array(codes.astype(np.int64), mask=codes < 0)
    return pc.take(vocabulary, indices)


def results_table(
    scorer: Scorer,
    batch: CustomerBatch,
    probabilities: np.ndarray,
    *,
    reasons: Mapping[int, str] | None = None,
    features: bool = False,
) -> pa.Table:
    """The batch's valid rows with their answers and its rejected rows with their
    reasons (`reasons`, by row, or else the batch's own), sorted by row; with
    `features`, each scored row's features as the model read them."""
    by_row = batch.rejected_reasons() if reasons is None else reasons
    rejected_rows = np.fromiter(by_row, dtype=np.int64, count=len(by_row))
    rows = np.concatenate([batch.rows.astype(np.int64), rejected_rows])
    rejected_ids = pa.array([batch.rejected_ids.get(row) for row in by_row], type=pa.string())
    valid_count, rejected_count = len(batch.rows), len(by_row)
    missing = np.full(rejected_count, -1)
    no_answer = np.full(rejected_count, np.nan)
    columns: dict[str, pa.Array | np.ndarray] = {
        "row": rows,
        CUSTOMER_ID: pa.concat_arrays([batch.ids, rejected_ids]),
        "status": words(STATUSES, np.repeat([0, 1], [valid_count, rejected_count])),
        "churn_probability": pa.array(
            np.concatenate([np.round(probabilities, ANSWER_DIGITS), no_answer]),
            mask=np.arange(len(rows)) >= valid_count,
        ),
        "prediction": words(LABEL_WORDS, np.concatenate([scorer.labels(probabilities), missing])),
        "risk_band": words(BAND_WORDS, np.concatenate([scorer.band_codes(probabilities), missing])),
        "errors": pa.concat_arrays(
            [pa.nulls(valid_count, pa.string()), pa.array(list(by_row.values()), pa.string())]
        ),
    }
    if features:
        for name, kind in FEATURE_TYPES.items():
            scored = pa.array(batch.features[name]).cast(kind)
            columns[name] = pa.concat_arrays([scored, pa.nulls(rejected_count, kind)])
    table = pa.table(columns)
    return table.sort_by("row") if rejected_count else table
