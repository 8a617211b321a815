from __future__ import annotations

import codecs
import random
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from churn.record import csvio
from churn.record.csvio import read_customer_batches, spreadsheet_safe
from churn.record.errors import BadRequest, InvalidInput
from churn.record.schema import FEATURE_NAMES
from tests.conftest import PUBLIC_DATA
from tests.factories import BANK_COLUMNS, bank_row, csv_records, mutated_csv

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


def test_long_cells_and_a_quoted_line_break_in_the_exact_reader(write_csv: WriteCsv) -> None:
    # The ragged row sends the file to the exact reader, which must read the cell Arrow
    # could (Python's csv stops at 128 KB by default), and say what went wrong.
    long_cell = bank_row(1).replace("Hargrave", "x" * 200_000)
    lines = [BANK_COLUMNS, long_cell, bank_row(2, 2), '3,15,"Two\nlines",600', bank_row(4, 4)]
    rows_in, valid, problems = read_all(write_csv("\n".join(lines) + "\n"))
    assert (rows_in, valid) == (4, [1, 2, 4])
    assert problems[0].startswith("row 3: has 4 fields")
    assert "a quote opened in it closes only on a later line" in problems[0]


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
        monkeypatch.setattr(csvio, "_SCAN_BYTES", rng.choice(SCAN_CHUNKS))
        monkeypatch.setattr(csvio, "_BLOCK_BYTES", rng.choice((256, 4 << 20)))
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


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_header_row_longer_than_the_first_read_is_read_whole(
    write_csv: WriteCsv, newline: str
) -> None:
    """A bank export with thousands of columns: the required ones after the first 64 KB."""
    extra = [f"extra_column_{i:05d}" for i in range(8000)]  # about 150 KB
    names = BANK_COLUMNS.split(",")
    header = ",".join([*extra, *names])
    assert len(header) > 2 * csvio.HEADER_BYTES
    rows = [",".join(["x"] * len(extra) + bank_row(i).split(",")) for i in (1, 2)]
    path = write_csv(newline.join([header, *rows]) + newline)
    rows_in, valid, problems = read_all(path)
    assert (rows_in, valid, problems) == (2, [1, 2], [])
    assert csvio.read_header(path).names == [*extra, *names]


def test_a_header_row_longer_than_arrow_reads_in_a_block_is_refused_so(
    write_csv: WriteCsv,
) -> None:
    path = write_csv("a" * (csvio.MAX_HEADER_BYTES + 10) + "," + BANK_COLUMNS + "\n")
    with pytest.raises(BadRequest, match="The header row is longer than 4 MB"):
        list(read_customer_batches(path, require_id=True))


def test_a_header_without_a_line_break_reads_to_the_end_of_the_file(write_csv: WriteCsv) -> None:
    path = write_csv("x" * 100_000 + "," + BANK_COLUMNS)
    assert read_all(path) == (0, [], [])


# A cell's fate is its own: what a spreadsheet reads as the number, in every column and
# whatever its neighbours in the batch are (Arrow's integer cast read 0x258 as 600 when
# every other cell of the column was a plain integer, and only then).
NUMBER_FORMS = [
    ("600", 600),
    ("+600", 600),
    ("600.0", 600),
    ("6e2", 600),
    ("6E+2", 600),
    ("600.", 600),
    ("0600", 600),
    (" 600 ", 600),  # spaces around a cell are its layout
    ("\u00a0600\u00a0", 600),  # so are no-break spaces, as for categories and names
    ("0x258", None),
    ("0X258", None),
    ("0b1", None),
    ("0o7", None),
    ("1_000", None),
    ("\u0666\u0660\u0660", None),  # Arabic-Indic 600
    ("\uff16\uff10\uff10", None),  # full-width 600
    ("\u0966\u0966", None),  # Devanagari
    ("6\u00a000", None),  # a no-break space inside: a thousands separator, in some locale
    ("6 00", None),
    ('"6,00"', None),  # a decimal comma, or a thousands separator: which is unknowable
    ("0x1p3", None),
]
NEIGHBOURS = {"plain integers": "650", "a fraction": "650.5", "text": "abc"}


@pytest.mark.parametrize(("cell", "value"), NUMBER_FORMS)
@pytest.mark.parametrize("column", ["CreditScore", "Balance"])
def test_a_number_cell_is_read_alike_whatever_its_neighbours(
    write_csv: WriteCsv, cell: str, value: int | None, column: str
) -> None:
    for context, neighbour in NEIGHBOURS.items():
        lines = [BANK_COLUMNS, bank_row(1, **{column: cell}), bank_row(2, **{column: neighbour})]
        path = write_csv("\n".join([*lines, bank_row(3)]) + "\n")
        (batch,) = read_customer_batches(path, require_id=True)
        problems = {p.row: str(p) for p in batch.problems}
        if value is None:
            assert problems.get(1) == (
                f"row 1 {column}: is not a number (allowed: "
                + ("an integer from 300 to 900)" if column == "CreditScore"
                   else "a number from 0 to 100000000)")
            ), (context, problems)  # fmt: skip
        else:
            assert 1 not in problems, (context, problems)
            assert batch.features[column].iloc[0] == value, context
