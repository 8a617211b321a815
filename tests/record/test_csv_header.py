from __future__ import annotations

import codecs

import pytest

from churn.record import csv_header
from churn.record.csv_reading import read_customer_batches
from churn.record.errors import BadRequest
from tests.factories import BANK_COLUMNS, bank_row
from tests.record.conftest import WriteCsv, read_all


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("a,b\n".encode("utf-16"), "UTF-16"),
        (codecs.BOM_UTF8 + b"\n \n", "empty"),
    ],
)
def test_files_that_are_not_csv(write_csv: WriteCsv, content: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        list(read_customer_batches(write_csv(content)))


def test_blank_lines_before_the_header_are_skipped(write_csv: WriteCsv) -> None:
    path = write_csv("\n".join(["", " ", BANK_COLUMNS, bank_row(1)]) + "\n")
    assert read_all(path) == (1, [1], [])


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_header_row_longer_than_the_first_read_is_read_whole(
    write_csv: WriteCsv, newline: str
) -> None:
    """A bank export with thousands of columns: the required ones after the first 64 KB."""
    extra = [f"extra_column_{i:05d}" for i in range(8000)]  # about 150 KB
    names = BANK_COLUMNS.split(",")
    header = ",".join([*extra, *names])
    assert len(header) > 2 * csv_header.HEADER_BYTES
    rows = [",".join(["x"] * len(extra) + bank_row(i).split(",")) for i in (1, 2)]
    path = write_csv(newline.join([header, *rows]) + newline)
    rows_in, valid, problems = read_all(path)
    assert (rows_in, valid, problems) == (2, [1, 2], [])
    assert csv_header.read_header(path).names == [*extra, *names]


def test_a_header_row_longer_than_arrow_reads_in_a_block_is_refused_so(
    write_csv: WriteCsv,
) -> None:
    path = write_csv("a" * (csv_header.MAX_HEADER_BYTES + 10) + "," + BANK_COLUMNS + "\n")
    with pytest.raises(BadRequest, match="The header row is longer than 4 MB"):
        list(read_customer_batches(path, require_id=True))


def test_a_header_without_a_line_break_reads_to_the_end_of_the_file(write_csv: WriteCsv) -> None:
    path = write_csv("x" * 100_000 + "," + BANK_COLUMNS)
    assert read_all(path) == (0, [], [])


def test_a_record_is_split_into_fields_however_long_a_cell() -> None:
    # A record Spark keeps whole, with a cell over Python's default 128 KB limit.
    cell = "x" * 200_000
    assert csv_header.record_fields(f'1,"{cell}\n",3') == ["1", cell + "\n", "3"]
    assert csv_header.record_fields("") == []
