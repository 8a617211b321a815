"""Typed columns (Parquet, a catalog's table) are checked as the same values in a CSV."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.csv as pacsv

from churn.record.validation import validate_raw
from churn.scoring.columns import validate_columns
from tests.factories import make_customer

CUSTOMERS = [
    make_customer(),
    make_customer(CreditScore=None),  # a null: an empty cell
    make_customer(Age=40.5),  # a fraction in an integer column
    make_customer(Balance=math.inf),
    make_customer(Tenure=61),
    make_customer(CreditScore=700.0, Balance=1234.5678901234567),  # whole: scored
    make_customer(Tenure=None),  # a null in a whole-number column
    make_customer(Tenure=2**62),  # beyond a float's exact integers, and out of range
    make_customer(Balance=math.nan),
]


def _typed() -> dict[str, pa.Array]:
    columns = {name: [c[name] for c in CUSTOMERS] for name in CUSTOMERS[0]}
    # Each number column as a bank's table types it: whole numbers as int64, the rest
    # (and any column with a fraction) as float64.
    return {
        name: pa.array(values, pa.float64() if any(type(v) is float for v in values) else None)
        for name, values in columns.items()
    }


def test_typed_columns_get_the_reasons_and_values_of_the_same_csv() -> None:
    typed = _typed()
    assert typed["Age"].type == pa.float64()
    assert typed["CreditScore"].type == pa.float64()
    assert typed["Tenure"].type == pa.int64()
    checked = validate_columns(typed, first_row=1)

    # The same values as a CSV writes them, a null as an empty cell.
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.table(typed), sink)
    text = pacsv.read_csv(
        pa.BufferReader(sink.getvalue()),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(typed, pa.string()), strings_can_be_null=False
        ),
    )
    from_csv = validate_raw({n: text.column(n).combine_chunks() for n in typed}, first_row=1)

    assert [str(p) for p in checked.problems] == [
        "row 2 CreditScore: is empty (allowed: an integer from 300 to 900)",
        "row 3 Age: is not a whole number (allowed: an integer from 18 to 100)",
        "row 4 Balance: is not a finite number (allowed: a number from 0 to 100000000)",
        "row 5 Tenure: is out of range (allowed: an integer from 0 to 60)",
        "row 7 Tenure: is empty (allowed: an integer from 0 to 60)",
        "row 8 Tenure: is out of range (allowed: an integer from 0 to 60)",
        "row 9 Balance: is not a finite number (allowed: a number from 0 to 100000000)",
    ]
    assert checked.problems == from_csv.problems
    assert checked.rows.tolist() == from_csv.rows.tolist() == [1, 6]
    assert checked.features.equals(from_csv.features)
    assert checked.features["CreditScore"].tolist() == [CUSTOMERS[0]["CreditScore"], 700]
    assert checked.features["Balance"].tolist()[1] == 1234.5678901234567


def test_narrower_number_types_are_read_as_their_values() -> None:
    """int32, uint8 and float32 columns, as other writers type flags and scores."""
    typed = _typed()
    narrow = {
        **typed,
        "Tenure": pa.array([3, 0, 61, 7], pa.int32()),
        "HasCrCard": pa.array([1, 0, 2, 1], pa.uint8()),
        "Balance": pa.array([0.5, None, 10.25, 1e9], pa.float32()),
    }
    narrow = {name: column.slice(0, 4) for name, column in narrow.items()}
    checked = validate_columns(narrow, first_row=1)
    as_text = {name: column.cast(pa.string()) for name, column in narrow.items()}
    from_text = validate_columns(as_text, first_row=1)
    assert checked.problems == from_text.problems
    assert checked.features.equals(from_text.features)
    assert {(p.row, p.field) for p in checked.problems} >= {
        (2, "Balance"),
        (3, "Tenure"),
        (3, "HasCrCard"),
        (4, "Balance"),
    }
