"""Reading CSVs: the one reader of customer files, and of any table churn reads as CSV.

A file is opened once (`CsvFile.open`): its header read and its quotes checked, so a
file that is no CSV, or whose quote left open would swallow rows, is refused before a
row is read. Its columns are then read as text, in batches of bounded memory, in file
order, every record accounted for (`TextBatch`); customers' cells go on to the schema
(`read_customer_batches`). The fast path is Arrow's CSV reader; a file whose records
have the wrong number of fields (truncated or shifted rows) is read again with Python's
`csv` module, which can number those records exactly.

Two other readers must differ, and each reads what this one would accept: Spark's
(`churn.spark.job`), which reads a book where it lies, split between executors, and
checks its cells with `churn.record.validation`; and the UI's
(`churn.clients.ui.results`), which talks to the service over HTTP only and so must not
load this reader (it numbers rows by the same `churn.record.rows` rule).
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
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


@dataclass
class TextBatch:
    """One slice of a file's records: the cells, as text, of those that split into the
    header's columns, and a problem for each that does not."""

    first_row: int
    row_count: int  # every record of the slice, ragged ones included
    rows: np.ndarray  # row numbers of the records in `cells`
    cells: Columns  # the columns asked for, spaces and all
    problems: list[Problem]  # the ragged records, by row


@dataclass(frozen=True)
class CsvFile:
    """A CSV whose header was read and whose quotes were checked."""

    path: Path
    header: Header

    @classmethod
    def open(cls, path: Path) -> CsvFile:
        """Raises `BadRequest` for a file that is not a CSV, `InvalidInput` for one with
        a quote left open."""
        header = read_header(path)
        check_quotes(path, header)
        return cls(path, header)

    @property
    def names(self) -> list[str]:
        return self.header.names

    def text_batches(
        self, columns: Sequence[str], batch_rows: int | None = None
    ) -> Iterator[TextBatch]:
        """The named columns (each in the header) as text, batch by batch, in file order.

        When Arrow meets a ragged record or bytes that are not UTF-8, the exact reader
        takes over after the records already handed out.
        """
        size = batch_rows or BATCH_ROWS
        wanted = list(columns)
        if not wanted or not set(wanted) <= set(self.names):
            raise ValueError(f"columns to read must be some of the header's: {wanted}")
        emitted = 0
        try:
            for cells in _arrow_batches(self.path, self.header, wanted, size):
                count = len(next(iter(cells.values())))
                rows = np.arange(emitted + 1, emitted + 1 + count)
                yield TextBatch(emitted + 1, count, rows, cells, [])
                emitted += count
        except _RaggedFile:
            yield from _exact_batches(self.path, self.names, wanted, size, skip=emitted)


def read_customer_batches(
    path: Path, *, require_id: bool = False, batch_rows: int | None = None
) -> Generator[CustomerBatch]:
    """Validated batches of a customer CSV, in file order.

    Raises `BadRequest` for a file that is not a CSV and `InvalidInput` for missing
    columns, before yielding anything.
    """
    file = CsvFile.open(path)
    check_columns(file.names, require_id=require_id)
    columns = [name for name in required_columns(True) if name in file.names]
    for text in file.text_batches(columns, batch_rows):
        yield validate_text(text)


def validate_text(text: TextBatch) -> CustomerBatch:
    """A batch of customers' cells checked against the schema; ragged records rejected."""
    batch = validate_raw(text.cells, first_row=text.first_row, row_numbers=text.rows)
    batch.row_count = text.row_count
    if text.problems:
        batch.problems = sorted(batch.problems + text.problems, key=lambda p: p.row or 0)
    return batch


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
) -> Iterator[TextBatch]:
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
            cells = {
                name: pa.array([records[i][pos] for i in good], type=pa.string())
                for name, pos in positions.items()
            }
            rows = np.array(good, dtype=np.int64) + first_row
            yield TextBatch(first_row, len(records), rows, cells, ragged)


def ragged_record(fields: int, width: int, row: int, *, unclosed: bool = False) -> Problem:
    """A record whose number of fields is not the header's."""
    return Problem(
        f"has {fields} fields, the header has {width}" + (_UNCLOSED_QUOTE if unclosed else ""),
        row=row,
        allowed="a value for every column in the header",
    )


_UNCLOSED_QUOTE = "; a quote opened in it closes only on a later line, which is read as its text"
