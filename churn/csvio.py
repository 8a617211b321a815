"""Reading customer CSVs in the public bank layout, and writing results safely.

Every data record is accounted for: a batch holds the records that passed the schema
(as typed features) and a `Problem` for each one that did not, by row and column.
Nothing is coerced: an empty cell, text in a number column, a fraction in an integer
column, NaN, infinity or an out-of-range number is reported, never guessed at.

Rows are numbered from 1 for the first data record after the header, the way the
bank's analysts count customers in a file (a spreadsheet shows row N on line N + 1).

Large files stream in batches with bounded memory. The fast path is Arrow's CSV
reader; a file whose records have the wrong number of fields (truncated or shifted
rows) is read again with Python's `csv` module, which can number those records exactly.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from churn.errors import BadRequest, InvalidInput, Problem
from churn.schema import CUSTOMER_ID, FEATURE_NAMES, FEATURE_SPECS, FeatureSpec

BATCH_ROWS = 65_536
_BLOCK_BYTES = 4 << 20
_MAX_ID_LENGTH = 64


@dataclass
class CustomerBatch:
    """One slice of a file: the valid records, and a problem list for the rest."""

    first_row: int
    row_count: int
    rows: np.ndarray  # row numbers of the valid records
    ids: list[str | None]
    features: pd.DataFrame  # valid records, columns FEATURE_NAMES, model dtypes
    problems: list[Problem] = field(default_factory=list)

    @property
    def rejected_rows(self) -> dict[int, list[Problem]]:
        by_row: dict[int, list[Problem]] = {}
        for problem in self.problems:
            by_row.setdefault(problem.row or 0, []).append(problem)
        return by_row


class _RaggedFile(Exception):
    """Arrow met a record with the wrong number of fields: switch to the exact reader."""


def read_header(path: Path) -> list[str]:
    """The file's column names, or a 400 that says why it is not a customer CSV."""
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    if not head.strip():
        raise BadRequest("The file is empty; expected a CSV with a header row.")
    if b"\x00" in head:
        raise BadRequest("The file is not a text CSV (it contains binary data).")
    first_line = head.splitlines()[0] if head.splitlines() else b""
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadRequest("The header row is not UTF-8 text; save the file as UTF-8 CSV.") from error
    return [name.strip() for name in next(csv.reader([text]), [])]


def required_columns(with_id: bool) -> tuple[str, ...]:
    return ((CUSTOMER_ID,) if with_id else ()) + FEATURE_NAMES


def check_columns(header: list[str], *, require_id: bool) -> None:
    missing = [name for name in required_columns(require_id) if name not in header]
    if missing:
        raise InvalidInput(
            "The CSV is missing required columns: " + ", ".join(missing) + ".",
            [
                Problem("missing column", field=name, allowed="a column with this header")
                for name in missing
            ],
        )
    duplicated = sorted({name for name in header if header.count(name) > 1} & set(header))
    wanted = set(required_columns(True))
    clashes = [name for name in duplicated if name in wanted]
    if clashes:
        raise InvalidInput(
            "The CSV has duplicated columns: " + ", ".join(clashes) + ".",
            [Problem("duplicated column", field=name) for name in clashes],
        )


def read_customer_batches(
    path: Path, *, require_id: bool = False, batch_rows: int = BATCH_ROWS
) -> Iterator[CustomerBatch]:
    """Like `iter_customer_batches`, but never hands out a batch the exact reader would redo.

    A ragged record can sit deep in a file. Rather than buffer the whole file, the fast
    reader is first run to the end without keeping anything; only a clean file is then
    streamed again. The first pass costs about a third of a full read, and a ragged
    file goes straight to the exact reader.
    """
    header = read_header(path)
    check_columns(header, require_id=require_id)
    columns = [name for name in required_columns(True) if name in header]
    if _arrow_can_read(path, columns):
        emitted = 0
        for raw in _arrow_batches(path, columns, batch_rows):
            batch = validate_raw(raw, first_row=emitted + 1)
            emitted += batch.row_count
            yield batch
    else:
        yield from _exact_batches(path, header, columns, batch_rows)


def _arrow_can_read(path: Path, columns: list[str]) -> bool:
    try:
        for _ in _arrow_batches(path, columns, BATCH_ROWS):
            pass
    except _RaggedFile:
        return False
    return True


def _arrow_batches(path: Path, columns: list[str], batch_rows: int) -> Iterator[pd.DataFrame]:
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns,
                column_types={name: pa.string() for name in columns},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        for record_batch in reader:
            for start in range(0, record_batch.num_rows, batch_rows):
                yield _arrow_to_frame(record_batch.slice(start, batch_rows))
    except pa.ArrowInvalid as error:
        # A record with the wrong number of fields, or bytes that are not UTF-8 in a
        # column we read.
        raise _RaggedFile from error


def _arrow_to_frame(record_batch: pa.RecordBatch) -> pd.DataFrame:
    return pd.DataFrame(
        {
            name: record_batch.column(name).to_numpy(zero_copy_only=False)
            for name in record_batch.schema.names
        }
    )


def _exact_batches(
    path: Path, header: list[str], columns: list[str], batch_rows: int
) -> Iterator[CustomerBatch]:
    positions = {name: header.index(name) for name in columns}
    width = len(header)
    row = 0
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        while True:
            records: list[list[str]] = []
            ragged: list[Problem] = []
            first_row = row + 1
            for record in reader:
                row += 1
                if len(record) != width:
                    ragged.append(
                        Problem(
                            f"has {len(record)} fields, the header has {width}",
                            row=row,
                            allowed="a value for every column in the header",
                        )
                    )
                    records.append([])
                else:
                    records.append(record)
                if len(records) >= batch_rows:
                    break
            if not records:
                return
            good = [i for i, record in enumerate(records) if record]
            raw = pd.DataFrame(
                {
                    name: np.array([records[i][pos] for i in good], dtype=object)
                    for name, pos in positions.items()
                }
            )
            batch = validate_raw(raw, first_row=first_row, row_numbers=np.array(good) + first_row)
            batch.row_count = len(records)
            batch.problems = sorted(batch.problems + ragged, key=lambda p: p.row or 0)
            yield batch


def validate_raw(
    raw: pd.DataFrame, *, first_row: int, row_numbers: np.ndarray | None = None
) -> CustomerBatch:
    """Check a frame of text cells against the schema, column by column, vectorised."""
    count = len(raw)
    rows = row_numbers if row_numbers is not None else np.arange(first_row, first_row + count)
    bad = np.zeros(count, dtype=bool)
    problems: list[Problem] = []
    typed: dict[str, np.ndarray] = {}

    def report(mask: np.ndarray, name: str, message: str, allowed: str) -> None:
        for index in np.flatnonzero(mask & ~bad_in_column):
            problems.append(Problem(message, field=name, row=int(rows[index]), allowed=allowed))
        bad_in_column[:] |= mask

    for spec in FEATURE_SPECS:
        text = raw[spec.name].to_numpy(dtype=object)
        bad_in_column = np.zeros(count, dtype=bool)
        if spec.kind == "category":
            values = _categories(text, spec, report)
        else:
            values = _numbers(text, spec, report)
        typed[spec.name] = values
        bad |= bad_in_column

    ids: list[str | None]
    if CUSTOMER_ID in raw.columns:
        id_text = raw[CUSTOMER_ID].to_numpy(dtype=object)
        bad_in_column = np.zeros(count, dtype=bool)
        ids_array = _ids(id_text, report)
        bad |= bad_in_column
        ids = [ids_array[i] for i in np.flatnonzero(~bad)]
    else:
        ids = [None] * int((~bad).sum())

    keep = ~bad
    features = pd.DataFrame({name: typed[name][keep] for name in FEATURE_NAMES})
    problems.sort(key=lambda p: p.row or 0)
    return CustomerBatch(
        first_row=first_row,
        row_count=count,
        rows=rows[keep],
        ids=ids,
        features=features,
        problems=problems,
    )


def _categories(text: np.ndarray, spec: FeatureSpec, report: Any) -> np.ndarray:
    values = np.asarray(text, dtype=object)
    allowed = np.isin(values, np.array(spec.categories, dtype=object))
    empty = values == ""
    report(empty, spec.name, "is empty", spec.allowed())
    report(~allowed & ~empty, spec.name, "is not an allowed category", spec.allowed())
    return values


def _numbers(text: np.ndarray, spec: FeatureSpec, report: Any) -> np.ndarray:
    try:
        parsed = pc.cast(pa.array(text, type=pa.string()), pa.float64()).to_numpy(
            zero_copy_only=False
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        parsed = pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(
            dtype=float, na_value=np.nan
        )
        stripped = np.char.strip(np.asarray(text, dtype=str))
        empty = np.isin(stripped, np.array(["", "?"]))
        report(empty, spec.name, "is empty", spec.allowed())
        # to_numeric reads "nan" and "inf" as numbers; they are reported below.
        literal_nan = np.char.lower(stripped) == "nan"
        report(
            np.isnan(parsed) & ~literal_nan & ~empty, spec.name, "is not a number", spec.allowed()
        )
    report(~np.isfinite(parsed), spec.name, "is not a finite number", spec.allowed())
    finite = np.where(np.isfinite(parsed), parsed, 0.0)
    if spec.kind == "integer":
        report(finite != np.floor(finite), spec.name, "is not a whole number", spec.allowed())
    low = spec.minimum if spec.minimum is not None else -math.inf
    high = spec.maximum if spec.maximum is not None else math.inf
    report((finite < low) | (finite > high), spec.name, "is out of range", spec.allowed())
    return finite.astype(np.int64) if spec.kind == "integer" else finite


def _ids(text: np.ndarray, report: Any) -> np.ndarray:
    values = np.asarray(text, dtype=object)
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    report(
        lengths > _MAX_ID_LENGTH, CUSTOMER_ID, "is too long", f"at most {_MAX_ID_LENGTH} characters"
    )
    report(
        _unprintable(values),
        CUSTOMER_ID,
        "has control characters or bytes that are not UTF-8",
        "printable UTF-8 text",
    )
    values[lengths == 0] = None
    return values


def _unprintable(values: np.ndarray) -> np.ndarray:
    # One pass over the joined text keeps a clean batch (the usual case) cheap.
    joined = "".join(values.tolist())
    if _UNPRINTABLE.search(joined) is None:
        return np.zeros(len(values), dtype=bool)
    return np.fromiter(
        (_UNPRINTABLE.search(v) is not None for v in values), dtype=bool, count=len(values)
    )


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ufffd]")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "|", "%")


def spreadsheet_safe(value: str | None) -> str:
    """A client-supplied value that a spreadsheet will show as text, never run as a formula.

    OWASP's advice for CSV injection: prefix a cell that starts with a formula trigger
    with a single quote.
    """
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value
