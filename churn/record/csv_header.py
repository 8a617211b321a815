"""A customer CSV's header row, and its records as Python's `csv` module delimits them.

The header is read before anything else, to refuse a file that is no CSV (empty,
binary, UTF-16) with a 400 that says so. Spaces around a header name are the file's
layout (`a, b`), not part of the name, and are dropped.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from churn.record.errors import BadRequest
from churn.record.rows import is_blank


@dataclass(frozen=True)
class Header:
    names: list[str]  # trimmed: "a, b" is a common way to write a CSV
    lines: int  # the file's lines up to and including the header row
    end: int = 0  # the file's offset after the header row's line break


def read_header(path: Path) -> Header:
    """The file's column names, or a 400 that says why it is not a customer CSV.

    Blank lines before the header (also `""`, a blank quoted) are skipped, as pandas
    (the old app) and both readers (`churn.record.csv_reading`) skip blank lines
    between records.
    """
    with path.open("rb") as handle:
        return header_from(handle.read)


HEADER_BYTES = 64 * 1024
# Arrow reads a record within one block (`churn.record.csv_reading`, whose blocks are
# this size): a longer header row could not be skipped.
MAX_HEADER_BYTES = 4 << 20


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


def _record(line: bytes) -> list[str]:
    return record_fields(line.decode("utf-8", errors="replace"))


def record_fields(text: str) -> list[str]:
    """The fields of one record's text (a line, or a record Spark kept whole), as
    Python's csv module splits them, however long a cell."""
    return next(_reader([text]), [])


def csv_records(lines: Iterable[str]) -> Iterator[list[str]]:
    """The records Python's csv module reads in `lines` (a text file opened with
    `newline=""`), blank lines aside, as Arrow's reader skips them."""
    return (record for record in _reader(lines) if not is_blank(record))


def _reader(lines: Iterable[str]) -> Iterator[list[str]]:
    # Python's default (128 KB) is far below what Arrow reads in a cell (a header name
    # included), and a quote left open runs to the end of the file: only the file's own
    # size (bounded by the upload limit) should limit a cell, so the limit goes to
    # 2 GiB, not to the size.
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    return csv.reader(lines)


_FIELD_LIMIT = 2**31 - 1
