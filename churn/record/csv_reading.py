"""Reading customer CSVs in the public bank layout: validated batches, in file order.

Large files stream in batches with bounded memory. The fast path is Arrow's CSV
reader; a file whose records have the wrong number of fields (truncated or shifted
rows) is read again with Python's `csv` module, which can number those records exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from churn.record.csv_header import MAX_HEADER_BYTES, Header, csv_records, read_header
from churn.record.csv_quotes import check_quotes
from churn.record.errors import Problem
from churn.record.validation import (
    Columns,
    CustomerBatch,
    check_columns,
    required_columns,
    validate_raw,
)

BATCH_ROWS = 65_536
_BLOCK_BYTES = MAX_HEADER_BYTES  # the header row is read as one record of a block


class _RaggedFile(Exception):
    """Arrow met a record with the wrong number of fields: switch to the exact reader."""


def read_customer_batches(
    path: Path, *, require_id: bool = False, batch_rows: int = BATCH_ROWS
) -> Generator[CustomerBatch]:
    """Validated batches of a customer CSV, in file order.

    Raises `BadRequest` for a file that is not a CSV and `InvalidInput` for missing
    columns, before yielding anything. When Arrow meets a ragged record or bytes that
    are not UTF-8, the exact reader takes over after the records already handed out.
    """
    header = read_header(path)
    check_quotes(path, header)
    check_columns(header.names, require_id=require_id)
    columns = [name for name in required_columns(True) if name in header.names]
    emitted = 0
    try:
        for raw in _arrow_batches(path, header, columns, batch_rows):
            batch = validate_raw(raw, first_row=emitted + 1)
            emitted += batch.row_count
            yield batch
    except _RaggedFile:
        yield from _exact_batches(path, header.names, columns, batch_rows, skip=emitted)


def _arrow_batches(
    path: Path, header: Header, columns: list[str], batch_rows: int
) -> Iterator[Columns]:
    try:
        reader = pacsv.open_csv(
            path,
            # The names as `read_header` gave them, in place of the file's own. Arrow
            # skips empty lines between records (`ignore_empty_lines`), as the exact
            # reader does, so both number the same records.
            read_options=pacsv.ReadOptions(
                block_size=_BLOCK_BYTES, column_names=header.names, skip_rows=header.lines
            ),
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
                piece = record_batch.slice(start, batch_rows)
                yield {name: piece.column(name) for name in piece.schema.names}
    except pa.ArrowInvalid as error:
        # A record with the wrong number of fields, or bytes that are not UTF-8 in a
        # column we read.
        raise _RaggedFile from error


def _exact_batches(
    path: Path, header: list[str], columns: list[str], batch_rows: int, skip: int = 0
) -> Iterator[CustomerBatch]:
    """Python's csv module: slower, but it numbers ragged records exactly."""
    positions = {name: header.index(name) for name in columns}
    width = len(header)
    row = 0
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        # Blank lines are no records, here as in Arrow's reader: the records skipped
        # below must be the ones Arrow already handed out.
        reader = csv_records(handle)
        next(reader, None)
        for _ in itertools.islice(reader, skip):
            row += 1
        while True:
            records: list[list[str]] = []
            ragged: list[Problem] = []
            first_row = row + 1
            for record in reader:
                row += 1
                if len(record) != width:
                    # A line break inside a field of a ragged record: most likely a
                    # quote opened by mistake, closed by another one lines later.
                    unclosed = any("\n" in value or "\r" in value for value in record)
                    ragged.append(ragged_record(len(record), width, row, unclosed=unclosed))
                    records.append([])
                else:
                    records.append(record)
                if len(records) >= batch_rows:
                    break
            if not records:
                return
            good = [i for i, record in enumerate(records) if record]
            raw = {
                name: pa.array([records[i][pos] for i in good], type=pa.string())
                for name, pos in positions.items()
            }
            batch = validate_raw(raw, first_row=first_row, row_numbers=np.array(good) + first_row)
            batch.row_count = len(records)
            batch.problems = sorted(batch.problems + ragged, key=lambda p: p.row or 0)
            yield batch


def ragged_record(fields: int, width: int, row: int, *, unclosed: bool = False) -> Problem:
    """A record whose number of fields is not the header's."""
    return Problem(
        f"has {fields} fields, the header has {width}" + (_UNCLOSED_QUOTE if unclosed else ""),
        row=row,
        allowed="a value for every column in the header",
    )


_UNCLOSED_QUOTE = "; a quote opened in it closes only on a later line, which is read as its text"
