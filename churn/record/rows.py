"""How a customer CSV's rows are numbered, for the service and its clients alike.

Rows are the records Python's `csv` module (and a spreadsheet) delimits, numbered from 1
after the header. A blank line is no row: no cells at all, or a single cell of only
whitespace (`""` and `"  "` included), as pandas, the old app's reader, skipped them.
The UI joins the service's results to the uploaded file by this number.
"""

from __future__ import annotations

from collections.abc import Sequence


def is_blank(record: Sequence[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip())
