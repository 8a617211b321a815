from __future__ import annotations

import pyarrow as pa

from churn.record.spreadsheet import spreadsheet_safe


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
