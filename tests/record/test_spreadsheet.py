from __future__ import annotations

import pyarrow as pa

from churn.record.spreadsheet import QUOTED_FORMULA, spreadsheet_safe


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


def test_a_quoted_value_reads_back_as_the_client_wrote_it() -> None:
    # What the offline commands do with the service's answers: the id, not the quote.
    # (Not an id that itself starts with a quote and a trigger, `'=x`: it reads back as `=x`.)
    sent = ['=HYPERLINK("x")', "+1", "\t7", "'plain", "15634602", "a=b", "'"]
    written = spreadsheet_safe(pa.array(sent)).to_pylist()
    assert written[:3] == ['\'=HYPERLINK("x")', "'+1", "'\t7"]
    assert [QUOTED_FORMULA.sub("", value) for value in written] == sent
