from __future__ import annotations

import pytest

from churn.record import csv_reading
from churn.record.csv_reading import read_customer_batches
from churn.record.errors import InvalidInput
from churn.record.schema import FEATURE_NAMES
from tests.conftest import PUBLIC_DATA
from tests.factories import BANK_COLUMNS, bank_row
from tests.record.conftest import WriteCsv, read_all


def test_public_layout_extra_columns_ignored(write_csv: WriteCsv) -> None:
    path = write_csv("\n".join([BANK_COLUMNS, bank_row(1), bank_row(2, 15647311)]) + "\n")
    batches = list(read_customer_batches(path, require_id=True))
    assert [list(b.features.columns) for b in batches] == [list(FEATURE_NAMES)]
    assert batches[0].ids.to_pylist() == ["15634602", "15647311"]
    assert batches[0].features["Balance"].tolist() == [120000.5, 120000.5]
    assert batches[0].problems == []


def test_ragged_rows_are_numbered_exactly(write_csv: WriteCsv) -> None:
    lines = [BANK_COLUMNS, bank_row(1), "2,15,Short,600", bank_row(3, 3), bank_row(4, 4) + ",x"]
    rows_in, valid, problems = read_all(write_csv("\n".join(lines) + "\n"))
    assert rows_in == 4
    assert valid == [1, 3]
    assert [p.split(":")[0] for p in problems] == ["row 2", "row 4"]


def test_quoted_newlines_bom_and_crlf(write_csv: WriteCsv) -> None:
    row = bank_row(1).replace("Hargrave", '"Har\r\ngrave"')
    content = "\ufeff" + BANK_COLUMNS + "\r\n" + row + "\r\n" + bank_row(2, 2) + "\r\n"
    rows_in, valid, problems = read_all(write_csv(content.encode("utf-8")))
    assert (rows_in, valid, problems) == (2, [1, 2], [])


def test_latin1_in_ignored_columns_is_fine(write_csv: WriteCsv) -> None:
    content = BANK_COLUMNS + "\n" + bank_row(1).replace("Hargrave", "Müller") + "\n"
    rows_in, valid, _ = read_all(write_csv(content.encode("latin-1")))
    assert (rows_in, valid) == (1, [1])


def test_latin1_in_a_read_column_is_reported(write_csv: WriteCsv) -> None:
    content = BANK_COLUMNS + "\n" + bank_row(1, Geography="Espa\xf1a") + "\n"
    rows_in, valid, problems = read_all(write_csv(content.encode("latin-1")))
    assert (rows_in, valid) == (1, [])
    assert problems[0].startswith("row 1 Geography")


def test_spaces_around_names_and_cells_are_layout(write_csv: WriteCsv) -> None:
    spaced = ", ".join(BANK_COLUMNS.split(","))
    row = ", ".join(bank_row(1, " 77 ").split(","))
    batch = next(read_customer_batches(write_csv(f"{spaced}\n{row}\n"), require_id=True))
    assert (batch.row_count, batch.problems) == (1, [])
    assert batch.ids.to_pylist() == ["77"]
    assert batch.features["Geography"].tolist() == ["France"]


def test_blank_lines_are_no_rows_in_either_reader(
    write_csv: WriteCsv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small blocks: Arrow hands out the first records before it meets the ragged one,
    # and the exact reader takes over after them. Both must skip the blank lines, or
    # the exact reader starts too early and reads a customer twice.
    monkeypatch.setattr(csv_reading, "_BLOCK_BYTES", 300)
    lines = [BANK_COLUMNS, bank_row(1), "", bank_row(2, 2), bank_row(3, 3), "  "]
    lines += [bank_row(4, 4), "5,15,Short", bank_row(6, 6)]
    rows_in, valid, problems = read_all(write_csv("\n".join(lines) + "\n"))
    assert rows_in == 6
    assert valid == [1, 2, 3, 4, 6]
    assert [p.split(":")[0] for p in problems] == ["row 5"]


def test_long_cells_and_a_quoted_line_break_in_the_exact_reader(write_csv: WriteCsv) -> None:
    # The ragged row sends the file to the exact reader, which must read the cell Arrow
    # could (Python's csv stops at 128 KB by default), and say what went wrong.
    long_cell = bank_row(1).replace("Hargrave", "x" * 200_000)
    lines = [BANK_COLUMNS, long_cell, bank_row(2, 2), '3,15,"Two\nlines",600', bank_row(4, 4)]
    rows_in, valid, problems = read_all(write_csv("\n".join(lines) + "\n"))
    assert (rows_in, valid) == (4, [1, 2, 4])
    assert problems[0].startswith("row 3: has 4 fields")
    assert "a quote opened in it closes only on a later line" in problems[0]


def test_header_only_file_has_no_rows(write_csv: WriteCsv) -> None:
    assert read_all(write_csv(BANK_COLUMNS + "\n")) == (0, [], [])


@pytest.mark.skipif(not PUBLIC_DATA.is_file(), reason=f"public data set not at {PUBLIC_DATA}")
def test_public_data_set_reads_cleanly() -> None:
    rows_in, valid, problems = read_all(PUBLIC_DATA)
    assert rows_in == len(valid) == 10_000
    assert problems == []


@pytest.mark.parametrize("ragged", [False, True], ids=["Arrow", "exact reader"])
def test_any_columns_are_read_as_text_every_record_accounted_for(
    write_csv: WriteCsv, ragged: bool
) -> None:
    # What training reads beside the features (Exited, Gender): cells as in the file.
    second = bank_row(2, 2).replace("Female", " Male ")[:-1] + "0"
    lines = [BANK_COLUMNS, bank_row(1), second, bank_row(3, 3)]
    lines += ["4,15,Short,600" if ragged else bank_row(4, 4), bank_row(5, 5)]
    file = csv_reading.CsvFile.open(write_csv("\n".join(lines) + "\n"))
    batches = list(file.text_batches(["Exited", "Gender"], batch_rows=2))
    assert [(b.first_row, b.row_count) for b in batches] == [(1, 2), (3, 2), (5, 1)]
    rows = [row for b in batches for row in b.rows.tolist()]
    genders = [cell for b in batches for cell in b.cells["Gender"].to_pylist()]
    assert rows == ([1, 2, 3, 5] if ragged else [1, 2, 3, 4, 5])
    assert genders[:3] == ["Female", " Male ", "Female"]
    assert len(genders) == len(rows)
    assert batches[0].cells["Exited"].to_pylist() == ["1", "0"]
    problems = [str(problem) for b in batches for problem in b.problems]
    assert problems == (
        ["row 4: has 4 fields, the header has 14 (allowed: a value for every column in the header)"]
        if ragged
        else []
    )


def test_a_file_is_refused_when_opened_before_any_column_is_read(write_csv: WriteCsv) -> None:
    # Whatever columns a caller reads, a quote left open is refused as the service does.
    lines = [BANK_COLUMNS, bank_row(1).replace("Hargrave", '"Hargrave'), bank_row(2, 2)]
    with pytest.raises(InvalidInput, match="A quote opens in Surname on row 1"):
        csv_reading.CsvFile.open(write_csv("\n".join(lines) + "\n"))


def test_the_batch_size_is_read_when_a_file_is_read(
    write_csv: WriteCsv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests of the stages after the reader set it to see many batches in a small file.
    monkeypatch.setattr(csv_reading, "BATCH_ROWS", 3)
    path = write_csv("\n".join([BANK_COLUMNS, *(bank_row(i, i) for i in range(1, 8))]) + "\n")
    assert [batch.row_count for batch in read_customer_batches(path)] == [3, 3, 1]
