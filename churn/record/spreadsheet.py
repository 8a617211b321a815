"""Values a client sent, written so that a spreadsheet shows them and never runs them."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

_TRIGGERS = r"[=+\-@\t\r|%]"  # what a spreadsheet runs a cell starting with as a formula
_FORMULA_TRIGGER = "^" + _TRIGGERS
# A value `spreadsheet_safe` quoted: the value itself is what follows the quote.
QUOTED_FORMULA = re.compile(f"^'(?={_TRIGGERS})")


def spreadsheet_safe(ids: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Client-supplied values that a spreadsheet shows as text, never runs as a formula.

    OWASP's advice for CSV injection: prefix a cell that starts with a formula trigger
    (= + - @ tab CR | %) with a single quote.
    """
    risky = pc.fill_null(pc.match_substring_regex(ids, _FORMULA_TRIGGER), False)
    if not pc.any(risky).as_py():
        return ids
    return pc.if_else(risky, pc.binary_join_element_wise("'", ids, ""), ids)
