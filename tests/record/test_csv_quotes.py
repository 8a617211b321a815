from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from churn.record import csv_quotes, csv_reading
from churn.record.csv_reading import read_customer_batches
from churn.record.errors import BadRequest, InvalidInput
from tests.factories import BANK_COLUMNS, bank_row, csv_records, mutated_csv
from tests.record.conftest import WriteCsv, read_all


def quote_error(path: Path) -> InvalidInput:
    with pytest.raises(InvalidInput, match="A quote opens in") as caught:
        list(read_customer_batches(path, require_id=False))
    return caught.value


@pytest.mark.parametrize(
    ("row", "edit", "field", "says"),
    [
        (2, lambda line: line.replace("Hargrave", '"Hargrave'), "Surname", "is never closed"),
        (2, lambda line: line[:-1] + '"1', "Exited", "is never closed"),
        (1, lambda line: line.replace("15600001", '"15600001'), "CustomerId", "never closed"),
        (6, lambda line: line.replace(",France", ',"France'), "Geography", "never closed"),
    ],
)
def test_a_quote_that_never_closes_is_refused_naming_its_row(
    write_csv: WriteCsv, row: int, edit: Callable[[str], str], field: str, says: str
) -> None:
    # Both readers take the rest of the file into the quoted cell: rows would vanish.
    rows = [bank_row(i, 15600000 + i) for i in range(1, 7)]
    rows[row - 1] = edit(rows[row - 1])
    for newline in ("\n", "\r\n", "\r"):
        error = quote_error(write_csv(newline.join([BANK_COLUMNS, *rows]) + newline))
        [problem] = error.problems
        assert (problem.row, problem.field) == (row, field)
        assert says in problem.message
        assert f"line {row + 1}" in problem.message
        assert f"on row {row} (line {row + 1} of the file)" in error.message


def test_a_quote_closed_by_a_stray_quote_rows_later_is_refused(write_csv: WriteCsv) -> None:
    # One record would join row 2's first cells to row 4's last ones, with the right
    # number of fields: scored as a customer who does not exist, rows 3 and 4 gone.
    rows = [bank_row(i, 15600000 + i) for i in range(1, 7)]
    rows[1] = rows[1].replace("Hargrave", '"Hargrave')
    rows[3] = rows[3].replace("Hargrave", 'Hargrave"')
    error = quote_error(write_csv("\n".join([BANK_COLUMNS, *rows]) + "\n"))
    assert (error.problems[0].row, error.problems[0].field) == (2, "Surname")
    assert "closes only on line 5: lines 3 to 5" in error.message


def test_a_quote_left_open_in_the_header_is_named(write_csv: WriteCsv) -> None:
    header = BANK_COLUMNS.replace("Surname", '"Surname')
    error = quote_error(write_csv("\n".join([header, bank_row(1), bank_row(2, 2)]) + "\n"))
    assert error.problems[0].row is None
    assert "on the header (line 1)" in error.message


def test_quoted_line_breaks_that_hold_no_records_are_values(write_csv: WriteCsv) -> None:
    # An address or a note over two lines, even with commas, is a value, not an error.
    note = bank_row(1).replace("Hargrave", '"12 Rue Haute,\r\nParis, ""France"""')
    lines = [BANK_COLUMNS, note, bank_row(2, 2).replace("Hargrave", 'O"Brien')]
    assert read_all(write_csv("\r\n".join(lines) + "\r\n")) == (2, [1, 2], [])


SCAN_CHUNKS = (1, 2, 3, 5, 64, 4 << 20)


def test_generated_files_are_read_as_pythons_csv_module_delimits_them(
    write_csv: WriteCsv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows in must be the records Python's csv module finds (`csv_records`, which knows
    # nothing of the readers), or the file refused when a quote takes in whole records.
    # Chunks of a few bytes put chunk ends inside quoted values and runs of quotes.
    rng = random.Random(20261129)
    rows = [bank_row(i, 15600000 + i, Age=20 + i) for i in range(1, 9)]
    content = ("\n".join([BANK_COLUMNS, *rows]) + "\n").encode()
    refused = 0
    for case in range(800):
        monkeypatch.setattr(csv_quotes, "_SCAN_BYTES", rng.choice(SCAN_CHUNKS))
        monkeypatch.setattr(csv_reading, "_BLOCK_BYTES", rng.choice((256, 4 << 20)))
        upload = mutated_csv(content, rng)
        expected, outcome = csv_records(upload), rows_or_error(write_csv(upload))
        if isinstance(outcome, int):
            assert outcome == expected, (case, upload)
        else:  # any 4xx for a file to refuse; the quote error for no other file
            assert expected is None or "A quote opens in" not in outcome, (case, upload)
            refused += expected is None
    assert refused > 50  # the generator does make the files this is about


def rows_or_error(path: Path) -> int | str:
    try:
        return sum(batch.row_count for batch in read_customer_batches(path))
    except (BadRequest, InvalidInput) as error:
        return error.message
