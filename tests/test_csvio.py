from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from churn import csvio
from churn.csvio import read_customer_batches, spreadsheet_safe
from churn.errors import BadRequest, InvalidInput
from churn.schema import FEATURE_NAMES
from tests.conftest import PUBLIC_DATA
from tests.factories import BANK_COLUMNS, bank_row

WriteCsv = Callable[..., Path]


def read_all(path: Path, require_id: bool = True) -> tuple[int, list[int], list[str]]:
    rows_in, valid, problems = 0, [], []
    for batch in read_customer_batches(path, require_id=require_id, batch_rows=2):
        rows_in += batch.row_count
        valid += batch.rows.tolist()
        problems += [str(problem) for problem in batch.problems]
    return rows_in, valid, problems


def test_public_layout_extra_columns_ignored(write_csv: WriteCsv) -> None:
    path = write_csv("\n".join([BANK_COLUMNS, bank_row(1), bank_row(2, 15647311)]) + "\n")
    batches = list(read_customer_batches(path, require_id=True))
    assert [list(b.features.columns) for b in batches] == [list(FEATURE_NAMES)]
    assert batches[0].ids.to_pylist() == ["15634602", "15647311"]
    assert batches[0].features["Balance"].tolist() == [120000.5, 120000.5]
    assert batches[0].problems == []


def test_missing_columns_are_named(write_csv: WriteCsv) -> None:
    path = write_csv("CustomerId,CreditScore,Age\n1,600,40\n")
    with pytest.raises(InvalidInput) as caught:
        list(read_customer_batches(path, require_id=True))
    missing = {problem.field for problem in caught.value.problems}
    assert missing == set(FEATURE_NAMES) - {"CreditScore", "Age"}


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"Age": ""}, "Age", "is empty"),
        ({"Age": "?"}, "Age", "is empty"),
        ({"Age": "forty"}, "Age", "is not a number"),
        ({"Age": "40.5"}, "Age", "is not a whole number"),
        ({"Age": "140"}, "Age", "is out of range"),
        ({"Balance": "nan"}, "Balance", "is not a finite number"),
        ({"Balance": "inf"}, "Balance", "is not a finite number"),
        ({"Balance": "1e400"}, "Balance", "is not a finite number"),
        ({"EstimatedSalary": "1e12"}, "EstimatedSalary", "is out of range"),
        ({"Geography": "Italy"}, "Geography", "is not an allowed category"),
        ({"Geography": "france"}, "Geography", "is not an allowed category"),
    ],
)
def test_bad_values_are_reported_by_row_and_column(
    write_csv: WriteCsv, overrides: dict[str, str], field: str, reason: str
) -> None:
    lines = [BANK_COLUMNS, bank_row(1), bank_row(2, 2, **overrides), bank_row(3, 3)]
    rows_in, valid, problems = read_all(write_csv("\n".join(lines) + "\n"))
    assert rows_in == 3
    assert valid == [1, 3]
    assert len(problems) == 1
    assert problems[0].startswith(f"row 2 {field}: {reason}")


def test_whole_float_is_an_integer_but_nothing_is_coerced_silently(write_csv: WriteCsv) -> None:
    path = write_csv("\n".join([BANK_COLUMNS, bank_row(1, Age="40.0")]) + "\n")
    batch = next(read_customer_batches(path))
    assert batch.features["Age"].tolist() == [40]


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
    monkeypatch.setattr(csvio, "_BLOCK_BYTES", 300)
    lines = [BANK_COLUMNS, bank_row(1), "", bank_row(2, 2), bank_row(3, 3), "  "]
    lines += [bank_row(4, 4), "5,15,Short", bank_row(6, 6)]
    rows_in, valid, problems = read_all(write_csv("\n".join(lines) + "\n"))
    assert rows_in == 6
    assert valid == [1, 2, 3, 4, 6]
    assert [p.split(":")[0] for p in problems] == ["row 5"]


def test_long_cells_and_an_unclosed_quote_in_the_exact_reader(write_csv: WriteCsv) -> None:
    # The unclosed quote sends the file to the exact reader, which must read the cell
    # Arrow could (Python's csv stops at 128 KB by default), and say what went wrong.
    long_cell = bank_row(1).replace("Hargrave", "x" * 200_000)
    lines = [BANK_COLUMNS, long_cell, bank_row(2, 2), '3,15,"Unclosed,600', bank_row(4, 4)]
    rows_in, valid, problems = read_all(write_csv("\n".join(lines) + "\n"))
    assert (rows_in, valid) == (3, [1, 2])
    assert problems[0].startswith("row 3: has 3 fields")
    assert "a quote opened in it is not closed" in problems[0]


def test_blank_lines_before_the_header_are_skipped(write_csv: WriteCsv) -> None:
    path = write_csv("\n".join(["", " ", BANK_COLUMNS, bank_row(1)]) + "\n")
    assert read_all(path) == (1, [1], [])


def test_a_file_split_by_semicolons_is_named(write_csv: WriteCsv) -> None:
    path = write_csv(BANK_COLUMNS.replace(",", ";") + "\n" + bank_row(1).replace(",", ";") + "\n")
    with pytest.raises(InvalidInput, match="split by semicolons: save the file with commas"):
        list(read_customer_batches(path))


def test_header_only_file_has_no_rows(write_csv: WriteCsv) -> None:
    assert read_all(write_csv(BANK_COLUMNS + "\n")) == (0, [], [])


def test_ids_that_could_run_as_formulas_are_made_safe() -> None:
    ids = pa.array(['=HYPERLINK("x")', "+1", "@SUM(A1)", "-2", "15634602", None, "a=b"])
    assert spreadsheet_safe(ids).to_pylist() == [
        '\'=HYPERLINK("x")',
        "'+1",
        "'@SUM(A1)",
        "'-2",
        "15634602",
        None,
        "a=b",
    ]


@pytest.mark.skipif(not PUBLIC_DATA.is_file(), reason=f"public data set not at {PUBLIC_DATA}")
def test_public_data_set_reads_cleanly() -> None:
    rows_in, valid, problems = read_all(PUBLIC_DATA)
    assert rows_in == len(valid) == 10_000
    assert problems == []
