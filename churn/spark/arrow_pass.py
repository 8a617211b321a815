"""The one pass over the book: each Arrow batch checked and scored in a Python worker.

`mapInArrow` hands each executor's Python worker the book's rows, Arrow batch by Arrow
batch, with their provenance; the pass checks them with the service's own rules
(`churn.scoring.columns.validate_columns`), scores the valid ones with its `Scorer`,
and gives back one row per input record (`churn.scoring.results.results_table`), with
its status: the answer, or the service's reasons.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.record.csv_header import record_fields
from churn.record.csv_reading import ragged_record
from churn.record.schema import CUSTOMER_ID
from churn.record.validation import required_columns
from churn.scoring.columns import validate_columns
from churn.scoring.results import FEATURE_TYPES, results_table
from churn.spark.model import BatchModel

if TYPE_CHECKING:
    from churn.scoring.scorer import Scorer

RESULT_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("row", pa.int64()),
        (CUSTOMER_ID, pa.string()),
        ("status", pa.string()),
        ("reasons", pa.string()),
        ("churn_probability", pa.float64()),
        ("prediction", pa.string()),
        ("risk_band", pa.string()),
        *FEATURE_TYPES.items(),
        ("model_version", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
        ("job_id", pa.string()),
    ]
)
_SQL = {
    pa.string(): "STRING",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    RESULT_SCHEMA.field("scored_at").type: "TIMESTAMP",
}
RESULT_DDL = ", ".join(f"`{f.name}` {_SQL[f.type]}" for f in RESULT_SCHEMA)
# The run's constants, which Spark adds after the pass rather than carry across it per row.
CONSTANTS = ("model_version", "scored_at", "job_id")
PASS_SCHEMA = pa.schema([f for f in RESULT_SCHEMA if f.name not in CONSTANTS])
PASS_DDL = ", ".join(f"`{f.name}` {_SQL[f.type]}" for f in PASS_SCHEMA)
# The hidden columns the pass reads beside the customer's: provenance (the file, and a
# Parquet row's index or else its split's first byte), and a CSV's corrupt records and
# its other columns folded into one.
FILE, BLOCK, INDEX = "_churn_file", "_churn_block", "_churn_row_index"
CORRUPT, OTHERS = "_churn_bad", "_churn_others"


@dataclass(frozen=True)
class ScoringPass:
    """The function each Python worker runs over its Arrow batches (pickled with the
    model file's bytes and digest, which the worker checks before loading them)."""

    model: BatchModel
    width: int  # fields in a CSV record: what a corrupt record is compared with

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = self.model.scorer()
        seen: dict[tuple[str, int], int] = {}  # records so far per file split, in this task
        for batch in batches:
            if batch.num_rows:
                yield self._results(scorer, batch, seen)

    def _results(
        self, scorer: Scorer, batch: pa.RecordBatch, seen: dict[tuple[str, int], int]
    ) -> pa.RecordBatch:
        corrupt = pa.nulls(batch.num_rows, pa.string())  # a CSV's column; none elsewhere
        if CORRUPT in batch.schema.names:
            corrupt = batch.column(CORRUPT)
        blank = _mask(pc.equal(pc.utf8_trim_whitespace(corrupt), ""))
        if blank.any():  # a line of spaces in a --multiline file: no record, as the service
            batch = batch.filter(pa.array(~blank))
            corrupt = batch.column(CORRUPT)
        rows = _row_numbers(batch, seen)
        bad = _mask(pc.is_valid(corrupt))
        good = np.flatnonzero(~bad)
        customers = batch.select(list(required_columns(True)))
        if len(good) < batch.num_rows:
            customers = customers.take(good)
        # Positions from 1 stand for rows here; the real numbers are put back below.
        checked = validate_columns(
            dict(zip(customers.schema.names, customers.columns, strict=True)),
            first_row=1,
            row_numbers=good + 1,
        )
        probabilities = scorer.score_frame(checked.features)
        reasons = checked.rejected_reasons()
        for position in np.flatnonzero(bad).tolist():
            reasons[position + 1] = self._corrupt_reason(corrupt[position].as_py(), rows, position)
        table = results_table(scorer, checked, probabilities, reasons=reasons, features=True)
        files = batch.column(FILE)
        if reasons:  # rows in file order, rejected ones among them: found by position
            positions = pc.subtract(table.column("row").combine_chunks(), 1)
            files, rows = files.take(positions), rows.take(positions)
        given = {"source_file": files, "row": rows, "reasons": table.column("errors")}
        return pa.RecordBatch.from_arrays(
            [_array(given[f.name] if f.name in given else table[f.name]) for f in PASS_SCHEMA],
            schema=PASS_SCHEMA,
        )

    def _corrupt_reason(self, text: str, rows: pa.Array, position: int) -> str:
        """The service's reason for a record of the wrong number of fields; a record cut
        off by a quoted cell that goes on to the next line says how to read it whole."""
        fields = record_fields(text)
        row = rows[position].as_py() or 0
        reason = ragged_record(len(fields), self.width, row, unclosed=any(
            "\n" in value or "\r" in value for value in fields)).reason()  # fmt: skip
        if text.count('"') % 2:
            reason += "; a quoted cell in it goes on to the next line: score with --multiline"
        return reason


def _row_numbers(batch: pa.RecordBatch, seen: dict[tuple[str, int], int]) -> pa.Array:
    """Each row's number in its file, from 1, where this task can know it (see
    `churn.spark.job`): a Parquet row's index, or a count from its split's start."""
    if INDEX in batch.schema.names:
        return pc.add(batch.column(INDEX), 1)
    files = batch.column(FILE).to_pylist()
    blocks = batch.column(BLOCK).to_pylist()
    numbers: list[int | None] = []
    for file, block in zip(files, blocks, strict=True):
        key = (file, block)
        seen[key] = seen.get(key, 0) + 1
        numbers.append(seen[key] if block == 0 else None)
    return pa.array(numbers, pa.int64())


def _array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _mask(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)
