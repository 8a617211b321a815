"""Customers from typed columns (Parquet files, a catalog's tables), checked as a CSV's.

A column may hold numbers, text or nulls. Each cell is checked as the text a CSV would
hold for it (`churn.record.validation.validate_raw`), a null as an empty cell, so that a row
is refused for the same reason, in the same words, whichever way the book was written.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.record.validation import CustomerBatch, validate_raw


def validate_columns(
    columns: Mapping[str, pa.Array], *, first_row: int, row_numbers: np.ndarray | None = None
) -> CustomerBatch:
    """The customers of `columns` (the features, and CustomerId if given), numbered from
    `first_row` or by `row_numbers`."""
    raw = {name: pc.fill_null(pc.cast(column, pa.string()), "") for name, column in columns.items()}
    return validate_raw(raw, first_row=first_row, row_numbers=row_numbers)
