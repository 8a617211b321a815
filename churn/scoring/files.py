"""Scoring whole CSV files: the old all-or-nothing contract and the new row-accounting one.

Both stream the file in batches (`churn.record.csv_reading`), so memory stays bounded by the batch
size, not the file size, except where the old contract's answer itself (one JSON map of
every id) has to be held.
"""

from __future__ import annotations

import io
import json
import tempfile
from io import TextIOWrapper
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from churn.record.answers import FileSummary
from churn.record.csv_reading import read_customer_batches
from churn.record.errors import InvalidInput, PayloadTooLarge, Problem
from churn.record.outcome import LEGACY_BATCH_LABELS
from churn.record.schema import CUSTOMER_ID
from churn.record.spreadsheet import spreadsheet_safe
from churn.record.validation import CustomerBatch
from churn.scoring.predictor import ChurnPredictor
from churn.scoring.results import RESULT_COLUMNS, results_table
from churn.scoring.stages import ahead, behind

OutputFormat = Literal["csv", "json"]
_NO_ROWS = "The file has a header but no customer rows."
DEFAULT_MAX_ROWS = 2_000_000


def flask_json_bytes(value: object) -> bytes:
    """Exactly what the old Flask app's `jsonify` sent: sorted keys, compact, a newline."""
    return (json.dumps(value, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _check_rows(rows_in: int, max_rows: int) -> None:
    if rows_in > max_rows:
        raise PayloadTooLarge(f"The file has more than {max_rows} rows (CHURN_MAX_ROWS); split it.")


def score_legacy_file(
    predictor: ChurnPredictor, path: Path, *, max_rows: int = DEFAULT_MAX_ROWS
) -> dict[object, str]:
    """The old `/v1/customerbatch` answer: CustomerId -> "Churn" / "Not Churn".

    Keyed as the old app keyed it (`legacy_keys`). The old app silently collapsed
    duplicate ids and crashed on bad rows; here any row that cannot be keyed and
    scored makes the whole request a 422 that lists the rows, and nothing is scored,
    because the old answer has no place to report a bad row.
    """
    rows_in = 0
    problems: list[Problem] = []
    rows: list[np.ndarray] = []
    cells: list[pa.Array] = []
    churn: list[np.ndarray] = []
    scorer = predictor.scorer
    scored: list[tuple[np.ndarray, np.ndarray]] = []
    for batch in ahead(read_customer_batches(path, require_id=True)):
        rows_in += batch.row_count
        _check_rows(rows_in, max_rows)
        problems += batch.problems
        problems += [
            Problem("is empty", field=CUSTOMER_ID, row=int(row), allowed="a customer id")
            for row in batch.rows[pc.is_null(batch.ids).to_numpy(zero_copy_only=False)]
        ]
        assert batch.id_cells is not None  # require_id: the column is there
        rows.append(batch.rows)
        cells.append(batch.id_cells)
        # Counted into live drift only once the whole file is answered: a refused file
        # scores nobody, and each retry of it would count its valid rows again.
        matrix = scorer.matrix(batch.features)
        scores = scorer.probabilities(matrix, observe=False)
        scored.append((matrix, scores))
        churn.append(scorer.labels(scores))
    if rows_in == 0:
        raise InvalidInput(_NO_ROWS)
    answers: dict[object, str] = {}
    if not problems:
        keys = legacy_keys(pa.chunked_array(cells, type=pa.string()))
        first_row_of: dict[object, int] = {}
        labels = np.concatenate(churn).tolist()
        for row, key, is_churn in zip(np.concatenate(rows).tolist(), keys, labels, strict=True):
            if key is None:
                problems.append(_read_as_missing(row))
            elif key in first_row_of:
                problems.append(_duplicate(row, first_row_of[key]))
            else:
                first_row_of[key] = row
                answers[key] = LEGACY_BATCH_LABELS[is_churn]
    if problems:
        problems.sort(key=lambda problem: problem.row or 0)
        count = len({problem.row for problem in problems})
        raise InvalidInput(
            f"{count} of {rows_in} rows cannot be scored; nothing was scored. "
            "Fix the rows listed, or use /v2/predict-file to score the valid rows "
            "and get the others back with their reasons.",
            problems,
        )
    for matrix, scores in scored:
        scorer.observe(matrix, scores)
    return answers


def legacy_keys(cells: pa.ChunkedArray) -> list[object]:
    """The ids as the old app's JSON keys: Python values of pandas' column, None for NA.

    The old app read the file with `pandas.read_csv` and keyed its answer by the
    `CustomerId` column's values, so a key's type is the one pandas inferred for the
    whole column: `int` if every id is a whole number (`007` is 7), `float` if some id
    has a point or an exponent (`7.0`), `bool` for True/False, `str` otherwise; and
    `jsonify` sorted the keys by those values. pandas itself reads the cells again
    here, so every rule of its inference holds. It reads them in one piece; the old
    app's pandas typed a big file in chunks (65,536 rows in this layout), which agree
    unless the ids change type between chunks, and then the old app's sort failed. A
    cell pandas reads as missing (`NA`, `null`, `None`, ...) is None: the old app
    keyed it `NaN`.
    """
    sink = pa.BufferOutputStream()
    pacsv.write_csv(
        pa.table({CUSTOMER_ID: cells}),
        sink,
        write_options=pacsv.WriteOptions(quoting_style="needed"),
    )
    column = pd.read_csv(io.BytesIO(sink.getvalue().to_pybytes()), low_memory=False)[CUSTOMER_ID]
    assert len(column) == len(cells), "every cell is one record: ids are never blank"
    keys: list[object] = column.astype(object).where(column.notna(), None).tolist()
    return keys


def _read_as_missing(row: int) -> Problem:
    return Problem(
        "reads as a missing value (the old app read NA, N/A, null, None, NaN as none)",
        field=CUSTOMER_ID,
        row=row,
        allowed="a customer id",
    )


def _duplicate(row: int, first: int) -> Problem:
    return Problem(
        f"duplicates the id in row {first}; each customer may appear once",
        field=CUSTOMER_ID,
        row=row,
    )


def score_file(
    predictor: ChurnPredictor,
    path: Path,
    out: Path,
    output_format: OutputFormat = "csv",
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> FileSummary:
    """Score every valid row, report every invalid one; rows in = scored + rejected.

    Three stages overlap, each batch passing from one to the next: reading, checking and
    building the model's input (a thread of its own), scoring (the caller's thread),
    writing (a thread of its own).
    Arrow, NumPy and XGBoost do their work without Python's lock, so on two cores a big
    file takes about the time of its slowest stage, not of all three.
    """
    rows_in = scored = rejected = churners = 0
    duplicates = DuplicateIds()
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer: _CsvResults | _JsonResults = (
            _CsvResults(handle) if output_format == "csv" else _JsonResults(handle)
        )

        scorer = predictor.scorer

        def write(batch: CustomerBatch, matrix: np.ndarray, probabilities: np.ndarray) -> None:
            writer.write(results_table(predictor.scorer, batch, probabilities))
            duplicates.add(batch.ids)
            scorer.observe(matrix, probabilities)

        with behind(write) as write_behind:
            batches = read_customer_batches(path, require_id=False)
            # The model's input matrix is built with the batch, in the reading thread.
            for batch, matrix in ahead((b, scorer.matrix(b.features)) for b in batches):
                rows_in += batch.row_count
                _check_rows(rows_in, max_rows)
                # Scoring is the slowest stage: XGBoost on one thread, since the other
                # stages hold the second core (1M rows, notebook layout: 1.43 s against
                # 1.62 s on two), and the drift profile counted in the writing thread.
                probabilities = scorer.probabilities(matrix, bulk=False, observe=False)
                scored += len(probabilities)
                rejected += len(batch.rejected_rows)
                churners += int(scorer.labels(probabilities).sum())
                write_behind(batch, matrix, probabilities)
        if rows_in == 0:
            raise InvalidInput(_NO_ROWS)
        summary = FileSummary(
            rows_in=rows_in,
            rows_scored=scored,
            rows_rejected=rejected,
            predicted_churn=churners,
            duplicate_ids=duplicates.count(),
            model_version=predictor.version,
        )
        writer.close(summary)
    # Arrow keeps freed buffers in its own pool; hand them back after a big file so a
    # worker does not sit on a file's worth of memory until the next one.
    pa.default_memory_pool().release_unused()
    return summary


class DuplicateIds:
    """How many ids repeat one seen before (each id after its first time), batch by batch.

    Ids are text: `007` and `7` are two customers. Most banks' ids are plain integers,
    though, and those are counted as int64 by sorting, which costs a tenth of hashing the
    text (1M ids: 0.015 s against 0.09-0.17 s, and most of it here, batch by batch, not
    after the last). An id written any other way (`007`, `+7`, `A-7`) sends the whole
    file to the text count.
    """

    def __init__(self) -> None:
        self._text: list[pa.Array] = []
        self._numbers: list[np.ndarray] | None = []

    def add(self, ids: pa.Array) -> None:
        present = ids.drop_null()
        self._text.append(present)
        if self._numbers is not None:
            numbers = _canonical_integers(present)
            if numbers is None:
                self._numbers = None
            else:
                self._numbers.append(np.sort(numbers))

    def count(self) -> int:
        if self._numbers is not None:
            # Each batch is sorted already: NumPy's stable sort (timsort) merges the runs.
            runs = np.concatenate([np.empty(0, np.int64), *self._numbers])
            numbers = np.sort(runs, kind="stable")
            return int(np.count_nonzero(numbers[1:] == numbers[:-1]))
        present = pa.chunked_array(self._text, type=pa.string())
        return len(present) - len(pc.unique(present))


def _canonical_integers(ids: pa.Array) -> np.ndarray | None:
    """The ids as int64 when every one is an integer written as Python writes it."""
    try:
        numbers = pc.cast(ids, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if pc.all(pc.equal(pc.cast(numbers, pa.string()), ids)).as_py() is False:
        return None
    return np.asarray(numbers.to_numpy(zero_copy_only=False), dtype=np.int64)


class _CsvResults:
    def __init__(self, handle: TextIOWrapper) -> None:
        self._handle = handle
        self._options = pacsv.WriteOptions(include_header=False)
        self._handle.write(",".join(RESULT_COLUMNS) + "\n")
        self._handle.flush()

    def write(self, table: pa.Table) -> None:
        # A spreadsheet opens this file: ids that would run as formulas are made text.
        # JSON answers keep ids as sent.
        index = table.schema.get_field_index(CUSTOMER_ID)
        safe = table.set_column(index, CUSTOMER_ID, spreadsheet_safe(table.column(index)))
        pacsv.write_csv(safe, self._handle.buffer, write_options=self._options)

    def close(self, summary: FileSummary) -> None:
        return None


class _JsonResults:
    """`{"predictions": [...], "rejected": [...], "summary": {...}}`, written as it goes."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        # Rejected rows go last; they wait in an anonymous file, not in memory.
        self._rejected: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._first = {"predictions": True, "rejected": True}
        self._handle.write('{"predictions":[')

    def write(self, table: pa.Table) -> None:
        status = table.column("status")
        scored = table.filter(pc.equal(status, "scored")).drop_columns(["status", "errors"])
        rejected = table.filter(pc.equal(status, "rejected")).select(["row", CUSTOMER_ID, "errors"])
        self._emit(self._handle, "predictions", scored)
        self._emit(self._rejected, "rejected", rejected)

    def _emit(self, handle: IO[str], key: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        records = table.to_pandas().to_json(orient="records")
        if not self._first[key]:
            handle.write(",")
        handle.write(records[1:-1])
        self._first[key] = False

    def close(self, summary: FileSummary) -> None:
        self._handle.write('],"rejected":[')
        self._rejected.seek(0)
        while chunk := self._rejected.read(1 << 20):
            self._handle.write(chunk)
        self._rejected.close()
        self._handle.write('],"summary":' + summary.model_dump_json() + "}")
