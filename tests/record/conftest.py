"""What the record room's tests share: a customer CSV read whole, as the service reads it."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from churn.record.csv_reading import read_customer_batches

WriteCsv = Callable[..., Path]


@pytest.fixture(autouse=True)
def fresh_field_limit() -> Iterator[None]:
    """Python's csv module's cell limit as a fresh process has it (128 KB): a test must
    not pass only because an earlier one raised it, as the readers do when they read."""
    limit = csv.field_size_limit(128 * 1024)
    yield
    csv.field_size_limit(limit)


def read_all(path: Path, require_id: bool = True) -> tuple[int, list[int], list[str]]:
    rows_in, valid, problems = 0, [], []
    for batch in read_customer_batches(path, require_id=require_id, batch_rows=2):
        rows_in += batch.row_count
        valid += batch.rows.tolist()
        problems += [str(problem) for problem in batch.problems]
    return rows_in, valid, problems
