"""Reading what the offline commands take: customers, predictions and outcomes.

A CSV of customers goes through the service's own reader (`churn.record.csv_reading`), so a row is
refused for the same reason as at upload; Parquet (a file, or a folder of them as
Spark writes it) is read by Arrow and its cells checked by the same schema. Tables of
predictions and outcomes are read as text, column by column, and every row is kept:
what cannot be used is counted and reported by whoever reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads

from churn.record.csv_header import read_header
from churn.record.csv_reading import BATCH_ROWS, read_customer_batches
from churn.record.errors import BadRequest, InvalidInput, Problem, naming_file
from churn.record.spreadsheet import QUOTED_FORMULA
from churn.record.validation import CustomerBatch, check_columns, required_columns
from churn.scoring.columns import validate_columns

PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})


def is_parquet(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES


def _dataset(path: Path) -> pads.Dataset:
    try:
        return pads.dataset(path, format="parquet")
    except (pa.ArrowInvalid, OSError) as error:
        raise BadRequest(f"{path} cannot be read as Parquet: {error}") from None


def customer_batches(path: Path) -> Iterator[CustomerBatch]:
    """Validated batches of customers from a CSV or Parquet file, in file order."""
    with naming_file(path):
        yield from _customer_batches(path)


def _customer_batches(path: Path) -> Iterator[CustomerBatch]:
    if not is_parquet(path):
        yield from read_customer_batches(path, require_id=False)
        return
    dataset = _dataset(path)
    check_columns(dataset.schema.names, require_id=False)
    columns = [name for name in required_columns(True) if name in dataset.schema.names]
    first_row = 1
    for record_batch in dataset.to_batches(columns=columns, batch_size=BATCH_ROWS):
        batch = validate_columns(
            {name: record_batch.column(name) for name in columns}, first_row=first_row
        )
        first_row += batch.row_count
        yield batch


def read_text_table(path: Path, required: Sequence[str], optional: Sequence[str]) -> pd.DataFrame:
    """The named columns of a CSV, Parquet or /v2/predict-file JSON file, as text.

    Every row of the file is a row of the frame; empty cells are empty strings.
    """
    with naming_file(path):
        return _text_table(path, required, optional)


def _text_table(path: Path, required: Sequence[str], optional: Sequence[str]) -> pd.DataFrame:
    if path.suffix.lower() == ".json":
        frame = _predict_file_json(path)
    elif is_parquet(path):
        dataset = _dataset(path)
        present = [n for n in [*required, *optional] if n in dataset.schema.names]
        _require(path, dataset.schema.names, required)
        table = dataset.to_table(columns=present)
        frame = pd.DataFrame(
            {n: pc.cast(table.column(n), pa.string()).to_pylist() for n in present}
        )
    else:
        header = read_header(path)
        names = header.names
        _require(path, names, required)
        present = [n for n in [*required, *optional] if n in names]
        try:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=header.lines),
                convert_options=pacsv.ConvertOptions(
                    include_columns=present,
                    column_types=dict.fromkeys(present, pa.string()),
                    strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as error:
            raise BadRequest(f"{path.name} cannot be read as CSV: {error}") from None
        frame = table.to_pandas()
    frame = frame[[n for n in [*required, *optional] if n in frame.columns]]
    return frame.astype(object).where(frame.notna(), "").map(lambda cell: str(cell).strip())


def _require(path: Path, names: Sequence[str], required: Sequence[str]) -> None:
    missing = [name for name in required if name not in names]
    if missing:
        raise InvalidInput(
            f"{path.name} is missing required columns: {', '.join(missing)}.",
            [Problem("missing column", field=name) for name in missing],
        )


def _predict_file_json(path: Path) -> pd.DataFrame:
    """/v2/predict-file's JSON answer: scored rows, then rejected ones, with a status."""
    try:
        answer = json.loads(path.read_text(encoding="utf-8"))
        scored = pd.DataFrame(answer["predictions"])
        rejected = pd.DataFrame(answer["rejected"])
    except (ValueError, KeyError, TypeError) as error:
        raise BadRequest(f"{path.name} is not a /v2/predict-file JSON answer ({error}).") from None
    scored["status"], rejected["status"] = "scored", "rejected"
    return pd.concat([scored, rejected], ignore_index=True)


def plain_ids(ids: pd.Series) -> pd.Series:
    """Ids as the bank wrote them: without the quote the service puts before a formula."""
    # The service wrote an id a spreadsheet would run with a leading quote
    # (`spreadsheet_safe`): the id itself is what follows it.
    return ids.str.replace(QUOTED_FORMULA, "", regex=True)
