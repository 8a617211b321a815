"""Customers from typed columns (Parquet files, a catalog's tables), checked as a CSV's.

A column may hold numbers, text or nulls. Each cell is checked by the CSV's rules
(`churn.record.validation.validate_raw`), a null as an empty cell, so that a row is
refused for the same reason, in the same words, whichever way the book was written: a
number feature's typed column as the numbers it holds, any other column as its text.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.record.schema import FEATURE_SPECS
from churn.record.validation import CustomerBatch, holds_numbers, validate_raw

_NUMBER_FEATURES = frozenset(spec.name for spec in FEATURE_SPECS if spec.kind != "category")


def validate_columns(
    columns: Mapping[str, pa.Array], *, first_row: int, row_numbers: np.ndarray | None = None
) -> CustomerBatch:
    """The customers of `columns` (the features, and CustomerId if given), numbered from
    `first_row` or by `row_numbers`."""
    raw = {
        name: column
        if name in _NUMBER_FEATURES and holds_numbers(column)
        else pc.fill_null(pc.cast(column, pa.string()), "")
        for name, column in columns.items()
    }
    return validate_raw(raw, first_row=first_row, row_numbers=row_numbers)
