from __future__ import annotations

import pytest

from churn.record.csv_reading import read_customer_batches
from churn.record.errors import InvalidInput
from churn.record.schema import FEATURE_NAMES
from tests.factories import BANK_COLUMNS, bank_row
from tests.record.conftest import WriteCsv, read_all


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


def test_a_file_split_by_semicolons_is_named(write_csv: WriteCsv) -> None:
    path = write_csv(BANK_COLUMNS.replace(",", ";") + "\n" + bank_row(1).replace(",", ";") + "\n")
    with pytest.raises(InvalidInput, match="split by semicolons: save the file with commas"):
        list(read_customer_batches(path))


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
