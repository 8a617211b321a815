"""Reading customer CSVs in the public bank layout, and writing results safely.

Every data record is accounted for: a batch holds the records that passed the schema
(as typed features) and a `Problem` for each one that did not, by row and column.
Nothing is coerced: an empty cell, text in a number column, a fraction in an integer
column, NaN, infinity or an out-of-range number is reported, never guessed at. Spaces
around a header name or a cell are the file's layout (`a, b`), not part of the value,
and are dropped.

Rows are numbered from 1 for the first data record after the header, the way the
bank's analysts count customers in a file (a spreadsheet shows row N on line N + 1).

Large files stream in batches with bounded memory. The fast path is Arrow's CSV
reader; a file whose records have the wrong number of fields (truncated or shifted
rows) is read again with Python's `csv` module, which can number those records exactly.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from churn.record.errors import BadRequest, InvalidInput, Problem
from churn.record.rows import is_blank
from churn.record.schema import CUSTOMER_ID, FEATURE_NAMES, FEATURE_SPECS, FeatureSpec

BATCH_ROWS = 65_536
_BLOCK_BYTES = 4 << 20
_MAX_ID_LENGTH = 64


Columns = dict[str, pa.Array]  # text cells of one batch, by column name


@dataclass
class CustomerBatch:
    """One slice of a file: the valid records, and a problem list for the rest."""

    first_row: int
    row_count: int
    rows: np.ndarray  # row numbers of the valid records
    ids: pa.Array  # their ids as text, null where the id cell was empty or absent
    id_cells: pa.Array | None  # their id cells as in the file, spaces and all; None: no ids
    features: pd.DataFrame  # valid records, columns FEATURE_NAMES, model dtypes
    problems: list[Problem] = field(default_factory=list)
    rejected_ids: dict[int, str] = field(default_factory=dict)  # row -> id, where readable

    @property
    def rejected_rows(self) -> dict[int, list[Problem]]:
        by_row: dict[int, list[Problem]] = {}
        for problem in self.problems:
            by_row.setdefault(problem.row or 0, []).append(problem)
        return by_row

    def rejected_reasons(self) -> dict[int, str]:
        """Each rejected row's problems as one text, in the order they were found."""
        return {
            row: "; ".join(problem.reason() for problem in problems)
            for row, problems in self.rejected_rows.items()
        }


class _RaggedFile(Exception):
    """Arrow met a record with the wrong number of fields: switch to the exact reader."""


@dataclass(frozen=True)
class Header:
    names: list[str]  # trimmed: "a, b" is a common way to write a CSV
    lines: int  # the file's lines up to and including the header row
    end: int = 0  # the file's offset after the header row's line break


def read_header(path: Path) -> Header:
    """The file's column names, or a 400 that says why it is not a customer CSV.

    Blank lines before the header (also `""`, a blank quoted) are skipped, as pandas
    (the old app) and both readers below skip blank lines between records.
    """
    with path.open("rb") as handle:
        return header_from(handle.read)


HEADER_BYTES = 64 * 1024
# Arrow reads a record within one block: a longer header row could not be skipped.
MAX_HEADER_BYTES = _BLOCK_BYTES


def header_from(read: Callable[[int], bytes]) -> Header:
    """The header of a file read from its start by `read(size)`: HEADER_BYTES first,
    more (doubling) while the header row has not ended, up to MAX_HEADER_BYTES."""
    head = read(HEADER_BYTES)
    while not _header_ended(head):
        if len(head) >= MAX_HEADER_BYTES:
            raise BadRequest(
                f"The header row is longer than {MAX_HEADER_BYTES >> 20} MB; expected a CSV "
                "with a header row of column names."
            )
        more = read(len(head))
        if not more:  # the file ends within its header row
            break
        head += more
    return parse_header(head)


def _header_ended(head: bytes) -> bool:
    """Whether `head` holds the header row's line break, or no row at all (blank lines
    only, which `parse_header` refuses as they are)."""
    offset = 0
    for line in head.splitlines(keepends=True):
        offset += len(line)
        if is_blank(_record(line)):
            continue
        # A CR at the very end may be the first half of a CRLF: wait for the next byte.
        return line.endswith(b"\n") or (line.endswith(b"\r") and offset < len(head))
    return True


def parse_header(head: bytes) -> Header:
    """`read_header` for a file's first HEADER_BYTES bytes, wherever they were read from."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise BadRequest("The file is UTF-16 text; save it as CSV UTF-8 (comma delimited).")
    bom = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    head = head[bom:]
    if not head.strip():
        raise BadRequest("The file is empty; expected a CSV with a header row.")
    if b"\x00" in head:
        raise BadRequest("The file is not a text CSV (it contains binary data).")
    lines = head.splitlines()
    position = next((i for i, line in enumerate(lines) if not is_blank(_record(line))), None)
    if position is None:
        raise BadRequest(
            "The file's first 64 KB are blank lines; expected a CSV with a header row."
        )
    try:
        lines[position].decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRequest("The header row is not UTF-8 text; save the file as UTF-8 CSV.") from error
    names = [name.strip() for name in _record(lines[position])]
    end = bom + sum(len(line) for line in head.splitlines(keepends=True)[: position + 1])
    return Header(names, lines=position + 1, end=end)


# Quotes. Arrow's reader and Python's csv module delimit records alike: a value that
# starts with a quote runs, line breaks and all, to the quote that closes it. So a quote
# opened by mistake takes the lines after it into one value, and neither reader says a
# word: if it never closes, the rest of the file is one value and its customers vanish
# under a success; if a later stray quote closes it, one record joins the start of one
# customer to the end of another. `check_quotes` finds both, before any row is read.
_QUOTE = 0x22
_SCAN_BYTES = 4 << 20


@dataclass
class _QuotedValue:
    """A quoted value met in the scan: where its quote opens (and closes), what it holds."""

    opened_at: int  # file offset of the opening quote
    closed_at: int | None = None  # file offset of the closing quote; None: not (yet) closed
    line_breaks: int = 0  # CR and LF bytes
    commas: int = 0

    def add(self, chunk: bytes, start: int, end: int) -> None:
        self.line_breaks += chunk.count(b"\n", start, end) + chunk.count(b"\r", start, end)
        self.commas += chunk.count(b",", start, end)


class _QuoteScan:
    """Quote state of a file fed chunk by chunk, as Python's csv module keeps it.

    A quote opens a quoted value only at the start of a field; inside one, `""` is a
    quote and a single quote closes it; anywhere else a quote is a character. Where
    every quote outside a value starts a field (as in files written by spreadsheets,
    pandas or R), quotes alternate between opening and closing, so the scan is
    vectorised; a chunk where some quote is a character is walked run by run.
    Only the values that hold a line break (or go on into the next chunk) are counted.
    """

    def __init__(self, header: Header) -> None:
        self.width = len(header.names)
        self.header_end = header.end
        self.offset = 0  # file offset of the next chunk
        self.before = 0x0A  # the byte before the next chunk; the data starts a field
        self.open: _QuotedValue | None = None  # the value the scan is inside, if any

    def feed(self, chunk: bytes) -> _QuotedValue | None:
        """Scan the next chunk; the first value closed in it that holds whole records."""
        found = None
        if b'"' in chunk:
            data = np.frombuffer(chunk, dtype=np.uint8)
            quotes = np.flatnonzero(data == _QUOTE)
            values = self._alternating(data, quotes)
            found = self._count(chunk, values if values is not None else self._runs(data, quotes))
        elif self.open is not None:
            self.open.add(chunk, 0, len(chunk))
        self.offset += len(chunk)
        self.before = chunk[-1]
        return found

    def holds_records(self, value: _QuotedValue) -> bool:
        """A value over line breaks with a record's commas, or any in the header (which
        is read as its first line, and whose names hold no line breaks)."""
        return value.line_breaks > 0 and (
            value.commas >= self.width - 1 or value.opened_at < self.header_end
        )

    def _alternating(self, data: np.ndarray, quotes: np.ndarray) -> list[_Span] | None:
        """The values to count, if quotes alternate (open, close) in this chunk, else None."""
        inside = int(self.open is not None)
        opening = quotes[inside::2]
        before = data[opening - 1]
        if len(opening) and opening[0] == 0:
            before[0] = self.before
        if not _STARTS_A_FIELD[before].all():
            return None
        breaks = np.flatnonzero((data == 0x0A) | (data == 0x0D))
        quotes_before = np.searchsorted(quotes, breaks)
        # The opening quote before each line break that is inside a value (-1: the value
        # carried in), and the last quote if it opens a value that goes on.
        held = set((quotes_before[(quotes_before + inside) % 2 == 1] - 1).tolist())
        count = len(quotes)
        if (count + inside) % 2 == 1:
            held.add(count - 1)
        if inside:
            held.add(-1)
        spans: dict[int, _Span] = {}
        for index in held:
            first = index  # back over `""` to the quote that opened the value
            while first >= 1 and quotes[first] == quotes[first - 1] + 1:
                first -= 2
            last = first + 1  # on over `""` to the quote that closes it
            while last + 1 < count and quotes[last + 1] == quotes[last] + 1:
                last += 2
            closed = last < count
            spans[first] = _Span(
                int(quotes[first]) + 1 if first >= 0 else 0,
                int(quotes[last]) if closed else len(data),
                closed,
            )
        return [spans[first] for first in sorted(spans)]

    def _runs(self, data: np.ndarray, quotes: np.ndarray) -> list[_Span]:
        """The values to count, walking the runs of quotes: exact wherever quotes are."""
        split = np.flatnonzero(np.diff(quotes) != 1) + 1
        starts = quotes[np.concatenate(([0], split))]
        ends = quotes[np.concatenate((split - 1, [len(quotes) - 1]))]
        odd = ((ends - starts) % 2 == 0).astype(bool)
        previous = data[starts - 1]
        if starts[0] == 0:
            previous[0] = self.before
        at_field_start = _STARTS_A_FIELD[previous] & (previous != _QUOTE)
        inside = _walk(odd, at_field_start, self.open is not None)
        after = np.where(inside, ~odd, odd & at_field_start)
        opens = starts[~inside & after]
        closes = ends[inside & ~after]
        # Values in order: the one carried in (if any), then one per opening quote; each
        # runs to the next closing quote, the last one perhaps on.
        begins = np.concatenate(([0] if self.open is not None else [], opens + 1))
        finishes = np.concatenate((closes, [len(data)] * (len(begins) - len(closes))))
        if len(begins) == 0:
            return []  # every quote here is a character in an unquoted value
        breaks = np.flatnonzero((data == 0x0A) | (data == 0x0D))
        wanted = np.searchsorted(breaks, finishes) > np.searchsorted(breaks, begins)
        wanted[0] |= self.open is not None
        wanted[-1] |= len(begins) > len(closes)
        return [
            _Span(int(begins[i]), int(finishes[i]), i < len(closes))
            for i in np.flatnonzero(wanted).tolist()
        ]

    def _count(self, chunk: bytes, spans: list[_Span]) -> _QuotedValue | None:
        """Count what each value holds in this chunk; the first closed that holds records."""
        for span in spans:
            if span.begin == 0 and self.open is not None:
                value = self.open
            else:
                value = _QuotedValue(self.offset + span.begin - 1)
            value.add(chunk, span.begin, span.end)
            if not span.closed:
                self.open = value
                return None
            value.closed_at = self.offset + span.end
            if self.holds_records(value):
                return value
        self.open = None
        return None


@dataclass(frozen=True)
class _Span:
    """The part of a quoted value in one chunk: from after its opening quote (0 if it
    began in an earlier chunk) to its closing quote (or the chunk's end)."""

    begin: int
    end: int
    closed: bool


# Bytes after which a quote opens a value: a comma or line break ends the field before,
# and in `""` (inside a value) the second quote goes on with the value.
_STARTS_A_FIELD = np.zeros(256, dtype=bool)
_STARTS_A_FIELD[[0x2C, 0x0D, 0x0A, _QUOTE]] = True


def _walk(odd: np.ndarray, at_field_start: np.ndarray, inside: bool) -> np.ndarray:
    """Whether the scan is inside a value before each run of quotes, one run at a time."""
    result = np.empty(len(odd), dtype=bool)
    for index, (is_odd, starts_field) in enumerate(
        zip(odd.tolist(), at_field_start.tolist(), strict=True)
    ):
        result[index] = inside
        inside = not is_odd if inside else is_odd and starts_field
    return result


def check_quotes(path: Path, header: Header) -> None:
    """Refuse (422) a file in which a quoted value holds whole records: a quote left open.

    A quoted value may hold line breaks (an address, a note); one that runs to the end
    of the file, or over line breaks and as many commas as a record has, is a quote
    opened by mistake, and the error names the row and column where it opens.
    """
    scan = _QuoteScan(header)
    with path.open("rb") as handle:
        if handle.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
            handle.seek(0)
        scan.offset = handle.tell()
        while chunk := handle.read(_SCAN_BYTES):
            while chunk.endswith(b'"') and (more := handle.read(1)):
                chunk += more  # a run of quotes is never split between chunks
            if found := scan.feed(chunk):
                raise _quote_left_open(path, header, found)
    if scan.open is not None:
        raise _quote_left_open(path, header, scan.open)


def _quote_left_open(path: Path, header: Header, value: _QuotedValue) -> InvalidInput:
    row, column = _where_quote_opens(path, value.opened_at)
    name = header.names[column] if column < len(header.names) else f"column {column + 1}"
    line = _line_of(path, value.opened_at)
    if value.closed_at is None:
        fault = "is never closed"
        effect = "the rest of the file would be read as that one cell"
    else:
        last = _line_of(path, value.closed_at)
        fault = f"closes only on line {last}"
        effect = f"lines {line} to {last} would be read as one cell, mixing customers' rows"
    where = f"row {row} (line {line} of the file)" if row else f"the header (line {line})"
    return InvalidInput(
        f"A quote opens in {name} on {where} and {fault}: {effect}. Nothing was scored; "
        "close the quote in its own cell, or remove it.",
        [
            Problem(
                f"opens a quote on line {line} that {fault}",
                field=name,
                row=row or None,
                allowed='quotes around a whole cell, "like this", with "" for a quote inside it',
            )
        ],
    )


def _where_quote_opens(path: Path, offset: int) -> tuple[int, int]:
    """The row (0: the header) and column of the quote at byte `offset`, counted as the
    readers count them: records by Python's csv module, blank lines aside."""
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    with path.open("rb") as raw:
        raw.seek(max(offset - 1, 0))
        starts_line = offset == 0 or raw.read(1) in (b"\r", b"\n", codecs.BOM_UTF8[-1:])
        raw.seek(0)
        prefix = io.TextIOWrapper(
            io.BufferedReader(_Prefix(raw, offset)),
            encoding="utf-8-sig",
            errors="replace",
            newline="",
        )
        records, last = -1, []  # the header is the first record
        for record in csv.reader(prefix):
            if not is_blank(record):
                records, last = records + 1, record
    return (records + 1, 0) if starts_line else (records, len(last) - 1)


class _Prefix(io.RawIOBase):
    """The first `size` bytes of a binary file, as a raw stream."""

    def __init__(self, raw: io.BufferedReader, size: int) -> None:
        super().__init__()
        self._raw = raw
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[: self._left]
        count = self._raw.readinto(view) if view.nbytes else 0
        self._left -= count
        return count


def _line_of(path: Path, offset: int) -> int:
    """The line of the file (from 1; CR, LF and CRLF end a line) that byte `offset` is on."""
    lines, left, after_cr = 1, offset, False
    with path.open("rb") as handle:
        while left > 0 and (chunk := handle.read(min(_SCAN_BYTES, left))):
            left -= len(chunk)
            lines += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            lines -= after_cr and chunk.startswith(b"\n")
            after_cr = chunk.endswith(b"\r")
    return lines


def _record(line: bytes) -> list[str]:
    return next(csv.reader([line.decode("utf-8", errors="replace")]), [])


def required_columns(with_id: bool) -> tuple[str, ...]:
    return ((CUSTOMER_ID,) if with_id else ()) + FEATURE_NAMES


def _layout_hint(header: list[str]) -> str:
    """Why no column was found, when the header is one column holding another separator:
    a spreadsheet in a French, German or Spanish locale saves CSV with semicolons."""
    if len(header) != 1:
        return ""
    found = [name for sign, name in _OTHER_SEPARATORS.items() if sign in header[0]]
    if not found:
        return ""
    return (
        f" The header is one column split by {found[0]}: save the file with commas between columns."
    )


_OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def check_columns(header: list[str], *, require_id: bool) -> None:
    missing = [name for name in required_columns(require_id) if name not in header]
    if missing:
        raise InvalidInput(
            "The CSV is missing required columns: "
            + ", ".join(missing)
            + "."
            + _layout_hint(header),
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
    # Python's default (128 KB) is far below what Arrow reads in a cell, and a quote
    # left open runs to the end of the file: only the file's own size (bounded by the
    # upload limit) should limit a cell, so the limit goes to 2 GiB, not to the size.
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        # Blank lines are no records, here as in Arrow's reader: the records skipped
        # below must be the ones Arrow already handed out.
        reader = (record for record in csv.reader(handle) if not is_blank(record))
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


_FIELD_LIMIT = 2**31 - 1
_UNCLOSED_QUOTE = "; a quote opened in it closes only on a later line, which is read as its text"


def validate_raw(
    raw: Columns, *, first_row: int, row_numbers: np.ndarray | None = None
) -> CustomerBatch:
    """Check text cells against the schema, column by column, vectorised in Arrow."""
    count = len(next(iter(raw.values())))
    rows = row_numbers if row_numbers is not None else np.arange(first_row, first_row + count)
    problems: list[Problem] = []
    bad = np.zeros(count, dtype=bool)
    typed: dict[str, Any] = {}

    for spec in FEATURE_SPECS:
        check = _ColumnCheck(spec.name, spec.allowed(), rows)
        if spec.kind == "category":
            typed[spec.name] = _categories(raw[spec.name], spec, check)
        else:
            typed[spec.name] = _numbers(raw[spec.name], spec, check)
        problems += check.problems
        bad |= check.bad

    ids = pa.nulls(count, type=pa.string())
    id_cells = raw.get(CUSTOMER_ID)
    readable_id = np.zeros(count, dtype=bool)
    if CUSTOMER_ID in raw:
        check = _ColumnCheck(
            CUSTOMER_ID, f"printable text of at most {_MAX_ID_LENGTH} characters", rows
        )
        ids = _ids(raw[CUSTOMER_ID], check)
        problems += check.problems
        readable_id = ~check.bad & _mask(pc.is_valid(ids))
        bad |= check.bad

    keep = ~bad
    # A rejected row keeps its id, when the id itself is fine, so people can find it.
    rejected_ids = {
        int(rows[i]): str(ids[int(i)].as_py()) for i in np.flatnonzero(bad & readable_id)
    }
    if bad.any():
        typed = {name: typed[name][keep] for name in FEATURE_NAMES}
        rows, ids = rows[keep], ids.filter(pa.array(keep))
        id_cells = id_cells.filter(pa.array(keep)) if id_cells is not None else None
    problems.sort(key=lambda p: p.row or 0)
    return CustomerBatch(
        first_row=first_row,
        row_count=count,
        rows=rows,
        ids=ids,
        id_cells=id_cells,
        features=pd.DataFrame({name: typed[name] for name in FEATURE_NAMES}),
        problems=problems,
        rejected_ids=rejected_ids,
    )


class _ColumnCheck:
    """Collects the first problem per row in one column."""

    def __init__(self, name: str, allowed: str, rows: np.ndarray) -> None:
        self.name = name
        self.allowed = allowed
        self.rows = rows
        self.bad = np.zeros(len(rows), dtype=bool)
        self.problems: list[Problem] = []

    def report(self, mask: np.ndarray, message: str) -> None:
        new = mask & ~self.bad
        if new.any():
            self.problems += [
                Problem(message, field=self.name, row=int(self.rows[i]), allowed=self.allowed)
                for i in np.flatnonzero(new)
            ]
            self.bad |= new


def _mask(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _categories(text: pa.Array, spec: FeatureSpec, check: _ColumnCheck) -> pd.Categorical[int]:
    # Spaces around a cell are the file's layout, not the value, as for numbers.
    trimmed = pc.utf8_trim_whitespace(text)
    codes = pc.index_in(trimmed, value_set=pa.array(spec.categories, type=pa.string()))
    empty = _mask(pc.equal(trimmed, ""))
    check.report(empty, "is empty")
    check.report(_mask(pc.is_null(codes)), "is not an allowed category")
    valid_codes = np.asarray(pc.fill_null(codes, 0).to_numpy(zero_copy_only=False), dtype=np.int8)
    return pd.Categorical.from_codes(valid_codes, dtype=pd.CategoricalDtype(list(spec.categories)))


# A number is what a spreadsheet reads as one, the same in every column and batch:
# ASCII digits, a sign, a decimal point and an exponent (`600`, `+600`, `600.0`, `6e2`,
# `.5`), as Arrow's float cast reads them; nothing in another base (`0x258`, which
# Arrow's integer cast would read as 600), with `_` (`1_000`) or in other digits
# (Arabic-Indic, full-width), which Python's `int()` would read. Whitespace around a cell is its
# layout, as for every cell; whitespace inside one (`6 00`, a no-break space) is not.
_DECIMAL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_NOT_FINITE = r"^[+-]?(nan|inf|infinity)$"  # read, then reported as not finite


def _numbers(text: pa.Array, spec: FeatureSpec, check: _ColumnCheck) -> np.ndarray:
    low = spec.minimum if spec.minimum is not None else -math.inf
    high = spec.maximum if spec.maximum is not None else math.inf
    if spec.kind == "integer" and not _may_hold_hex(text):
        # Plain integers, as nearly every file writes them, need no float checks.
        try:
            whole = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # `7.0`, ` 7`, `+7`, text: the checks below say which is fine
        else:
            check.report((whole < low) | (whole > high), "is out of range")
            return np.asarray(whole, dtype=np.int64)
    try:
        # Arrow's float cast reads exactly the decimal forms above, and no other base.
        parsed = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Some cell is not a number as it stands: find which, cell by cell, only for
        # this batch, reading each with the same cast once its layout is trimmed.
        trimmed = pc.utf8_trim_whitespace(text)
        empty = _mask(pc.is_in(trimmed, value_set=pa.array(["", "?"])))
        readable = _mask(pc.match_substring_regex(trimmed, _DECIMAL)) | _mask(
            pc.match_substring_regex(trimmed, _NOT_FINITE, ignore_case=True)
        )
        shown = pc.if_else(pa.array(readable), trimmed, pa.scalar("nan"))
        parsed = pc.cast(shown, pa.float64()).to_numpy(zero_copy_only=False)
        check.report(empty, "is empty")
        check.report(~readable, "is not a number")
    finite = np.isfinite(parsed)
    check.report(~finite, "is not a finite number")
    values = np.where(finite, parsed, 0.0)
    if spec.kind == "integer":
        check.report(values != np.floor(values), "is not a whole number")
    check.report((values < low) | (values > high), "is out of range")
    return values.astype(np.int64) if spec.kind == "integer" else values


def _may_hold_hex(text: pa.Array) -> bool:
    """Whether a cell may be hexadecimal (`0x258`), which Arrow's integer cast reads.

    A scan of the cells' bytes for an x, at memory speed; the bytes may reach beyond
    the batch's own (a slice of a larger column), when a closer look decides.
    """
    buffers = text.buffers() if isinstance(text, pa.StringArray) else []
    if len(buffers) == 3 and buffers[2] is not None:
        data = buffers[2].to_pybytes()
        if b"x" not in data and b"X" not in data:
            return False
    return bool(pc.any(pc.match_substring(text, "x", ignore_case=True)).as_py())


def _ids(text: pa.Array, check: _ColumnCheck) -> pa.Array:
    text = pc.utf8_trim_whitespace(text)
    check.report(_mask(pc.greater(pc.utf8_length(text), _MAX_ID_LENGTH)), "is too long")
    # Ids in printable ASCII, as banks' ids nearly always are, cannot match the search.
    if not pc.all(pc.or_(pc.ascii_is_printable(text), pc.equal(text, ""))).as_py():
        check.report(
            _mask(pc.match_substring_regex(text, _UNPRINTABLE)),
            "has control characters or bytes that are not UTF-8",
        )
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, type=pa.string()), text)


_UNPRINTABLE = "[\\x00-\\x1f\\x7f\\x{fffd}]"


_FORMULA_TRIGGER = r"^[=+\-@\t\r|%]"


def spreadsheet_safe(ids: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Client-supplied values that a spreadsheet shows as text, never runs as a formula.

    OWASP's advice for CSV injection: prefix a cell that starts with a formula trigger
    (= + - @ tab CR | %) with a single quote.
    """
    risky = pc.fill_null(pc.match_substring_regex(ids, _FORMULA_TRIGGER), False)
    if not pc.any(risky).as_py():
        return ids
    return pc.if_else(risky, pc.binary_join_element_wise("'", ids, ""), ids)
