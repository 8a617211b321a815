"""Quotes left open in a customer CSV, found before any row is read.

Arrow's reader and Python's csv module delimit records alike: a value that starts with
a quote runs, line breaks and all, to the quote that closes it. So a quote opened by
mistake takes the lines after it into one value, and neither reader says a word: if it
never closes, the rest of the file is one value and its customers vanish under a
success; if a later stray quote closes it, one record joins the start of one customer
to the end of another. `check_quotes` finds both, in one pass over the file's bytes.
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from churn.record.csv_header import Header, csv_records
from churn.record.errors import InvalidInput, Problem

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
        for record in csv_records(prefix):
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
