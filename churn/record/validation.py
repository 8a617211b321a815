"""Customers' cells checked against the schema: the valid records typed, a `Problem` for
each of the others, by row and column.

Every record is accounted for. Nothing is coerced: an empty cell, text in a number
column, a fraction in an integer column, NaN, infinity or an out-of-range number is
reported, never guessed at. Spaces around a cell are the file's layout, not part of the
value, and are dropped. The cells are text, however they were read (a CSV, Parquet, a
Spark task), so a row is refused for the same reason wherever it comes from.

Rows are numbered from 1 for the first data record after the header, the way the
bank's analysts count customers in a file (a spreadsheet shows row N on line N + 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn.record.errors import InvalidInput, Problem
from churn.record.schema import CUSTOMER_ID, FEATURE_NAMES, FEATURE_SPECS, FeatureSpec

_MAX_ID_LENGTH = 64


Columns = dict[str, pa.Array]  # text cells of one batch, by column name


@dataclass
class CustomerBatch:
    """One slice of a file: the valid records, and a problem list for the rest."""

    first_row: int
    row_count: int
    rows: np.ndarray  # row numbers of the valid records
    ids: pa.Array  # their ids as text, null where the id cell was empty or absent
    id_cells: pa.Array | None  # their id cells as in the file, spaces and all; None: no ids
    features: pd.DataFrame  # valid records, columns FEATURE_NAMES, model dtypes
    problems: list[Problem] = field(default_factory=list)
    rejected_ids: dict[int, str] = field(default_factory=dict)  # row -> id, where readable

    @property
    def rejected_rows(self) -> dict[int, list[Problem]]:
        by_row: dict[int, list[Problem]] = {}
        for problem in self.problems:
            by_row.setdefault(problem.row or 0, []).append(problem)
        return by_row

    def rejected_reasons(self) -> dict[int, str]:
        """Each rejected row's problems as one text, in the order they were found."""
        return {
            row: "; ".join(problem.reason() for problem in problems)
            for row, problems in self.rejected_rows.items()
        }


def required_columns(with_id: bool) -> tuple[str, ...]:
    return ((CUSTOMER_ID,) if with_id else ()) + FEATURE_NAMES


def _layout_hint(header: list[str]) -> str:
    """Why no column was found, when the header is one column holding another separator:
    a spreadsheet in a French, German or Spanish locale saves CSV with semicolons."""
    if len(header) != 1:
        return ""
    found = [name for sign, name in _OTHER_SEPARATORS.items() if sign in header[0]]
    if not found:
        return ""
    return (
        f" The header is one column split by {found[0]}: save the file with commas between columns."
    )


_OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def check_columns(header: list[str], *, require_id: bool) -> None:
    missing = [name for name in required_columns(require_id) if name not in header]
    if missing:
        raise InvalidInput(
            "The CSV is missing required columns: "
            + ", ".join(missing)
            + "."
            + _layout_hint(header),
            [
                Problem("missing column", field=name, allowed="a column with this header")
                for name in missing
            ],
        )
    duplicated = sorted({name for name in header if header.count(name) > 1} & set(header))
    wanted = set(required_columns(True))
    clashes = [name for name in duplicated if name in wanted]
    if clashes:
        raise InvalidInput(
            "The CSV has duplicated columns: " + ", ".join(clashes) + ".",
            [Problem("duplicated column", field=name) for name in clashes],
        )


def validate_raw(
    raw: Columns, *, first_row: int, row_numbers: np.ndarray | None = None
) -> CustomerBatch:
    """Check text cells (and a number feature's typed column, `holds_numbers`) against
    the schema, column by column, vectorised in Arrow."""
    count = len(next(iter(raw.values())))
    rows = row_numbers if row_numbers is not None else np.arange(first_row, first_row + count)
    problems: list[Problem] = []
    bad = np.zeros(count, dtype=bool)
    typed: dict[str, Any] = {}

    for spec in FEATURE_SPECS:
        check = _ColumnCheck(spec.name, spec.allowed(), rows)
        if spec.kind == "category":
            typed[spec.name] = _categories(raw[spec.name], spec, check)
        else:
            typed[spec.name] = _numbers(raw[spec.name], spec, check)
        problems += check.problems
        bad |= check.bad

    ids = pa.nulls(count, type=pa.string())
    id_cells = raw.get(CUSTOMER_ID)
    readable_id = np.zeros(count, dtype=bool)
    if CUSTOMER_ID in raw:
        check = _ColumnCheck(
            CUSTOMER_ID, f"printable text of at most {_MAX_ID_LENGTH} characters", rows
        )
        ids = _ids(raw[CUSTOMER_ID], check)
        problems += check.problems
        readable_id = ~check.bad & _mask(pc.is_valid(ids))
        bad |= check.bad

    keep = ~bad
    # A rejected row keeps its id, when the id itself is fine, so people can find it.
    rejected_ids = {
        int(rows[i]): str(ids[int(i)].as_py()) for i in np.flatnonzero(bad & readable_id)
    }
    if bad.any():
        typed = {name: typed[name][keep] for name in FEATURE_NAMES}
        rows, ids = rows[keep], ids.filter(pa.array(keep))
        id_cells = id_cells.filter(pa.array(keep)) if id_cells is not None else None
    problems.sort(key=lambda p: p.row or 0)
    return CustomerBatch(
        first_row=first_row,
        row_count=count,
        rows=rows,
        ids=ids,
        id_cells=id_cells,
        features=pd.DataFrame({name: typed[name] for name in FEATURE_NAMES}),
        problems=problems,
        rejected_ids=rejected_ids,
    )


class _ColumnCheck:
    """Collects the first problem per row in one column."""

    def __init__(self, name: str, allowed: str, rows: np.ndarray) -> None:
        self.name = name
        self.allowed = allowed
        self.rows = rows
        self.bad = np.zeros(len(rows), dtype=bool)
        self.problems: list[Problem] = []

    def report(self, mask: np.ndarray, message: str) -> None:
        new = mask & ~self.bad
        if new.any():
            self.problems += [
                Problem(message, field=self.name, row=int(self.rows[i]), allowed=self.allowed)
                for i in np.flatnonzero(new)
            ]
            self.bad |= new


def _mask(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _categories(text: pa.Array, spec: FeatureSpec, check: _ColumnCheck) -> pd.Categorical[int]:
    # Spaces around a cell are the file's layout, not the value, as for numbers.
    trimmed = pc.utf8_trim_whitespace(text)
    codes = pc.index_in(trimmed, value_set=pa.array(spec.categories, type=pa.string()))
    empty = _mask(pc.equal(trimmed, ""))
    check.report(empty, "is empty")
    check.report(_mask(pc.is_null(codes)), "is not an allowed category")
    valid_codes = np.asarray(pc.fill_null(codes, 0).to_numpy(zero_copy_only=False), dtype=np.int8)
    return pd.Categorical.from_codes(valid_codes, dtype=pd.CategoricalDtype(list(spec.categories)))


# A number is what a spreadsheet reads as one, the same in every column and batch:
# ASCII digits, a sign, a decimal point and an exponent (`600`, `+600`, `600.0`, `6e2`,
# `.5`), as Arrow's float cast reads them; nothing in another base (`0x258`, which
# Arrow's integer cast would read as 600), with `_` (`1_000`) or in other digits
# (Arabic-Indic, full-width), which Python's `int()` would read. Whitespace around a cell is its
# layout, as for every cell; whitespace inside one (`6 00`, a no-break space) is not.
_DECIMAL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_NOT_FINITE = r"^[+-]?(nan|inf|infinity)$"  # read, then reported as not finite


def holds_numbers(column: pa.Array) -> bool:
    """Whether a column is typed as numbers (Parquet, a table), which a number feature's
    checks read as they are; any other column is checked as its text."""
    return bool(pa.types.is_integer(column.type) or pa.types.is_floating(column.type))


def _numbers(text: pa.Array, spec: FeatureSpec, check: _ColumnCheck) -> np.ndarray:
    low = spec.minimum if spec.minimum is not None else -math.inf
    high = spec.maximum if spec.maximum is not None else math.inf
    if holds_numbers(text):
        # A typed column (Parquet, a table) holds numbers already: the checks below, with
        # no round trip through text (0.4 CPU-s per million rows in a Spark worker).
        check.report(_mask(pc.is_null(text)), "is empty")
        parsed = pc.fill_null(pc.cast(text, pa.float64(), safe=False), 0.0).to_numpy(
            zero_copy_only=False
        )
    elif spec.kind == "integer" and not _may_hold_hex(text):
        # Plain integers, as nearly every file writes them, need no float checks.
        try:
            whole = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # `7.0`, ` 7`, `+7`, text: the checks below say which is fine
        else:
            check.report((whole < low) | (whole > high), "is out of range")
            return np.asarray(whole, dtype=np.int64)
        parsed = _parsed(text, check)
    else:
        parsed = _parsed(text, check)
    finite = np.isfinite(parsed)
    check.report(~finite, "is not a finite number")
    values = np.where(finite, parsed, 0.0)
    if spec.kind == "integer":
        check.report(values != np.floor(values), "is not a whole number")
    check.report((values < low) | (values > high), "is out of range")
    return values.astype(np.int64) if spec.kind == "integer" else values


def _parsed(text: pa.Array, check: _ColumnCheck) -> np.ndarray:
    """Text cells as numbers (NaN where a cell is not one, which `check` is told)."""
    try:
        # Arrow's float cast reads exactly the decimal forms above, and no other base.
        parsed = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Some cell is not a number as it stands: find which, cell by cell, only for
        # this batch, reading each with the same cast once its layout is trimmed.
        trimmed = pc.utf8_trim_whitespace(text)
        empty = _mask(pc.is_in(trimmed, value_set=pa.array(["", "?"])))
        readable = _mask(pc.match_substring_regex(trimmed, _DECIMAL)) | _mask(
            pc.match_substring_regex(trimmed, _NOT_FINITE, ignore_case=True)
        )
        shown = pc.if_else(pa.array(readable), trimmed, pa.scalar("nan"))
        parsed = pc.cast(shown, pa.float64()).to_numpy(zero_copy_only=False)
        check.report(empty, "is empty")
        check.report(~readable, "is not a number")
    return np.asarray(parsed)


def _may_hold_hex(text: pa.Array) -> bool:
    """Whether a cell may be hexadecimal (`0x258`), which Arrow's integer cast reads.

    A scan of the cells' bytes for an x, at memory speed; the bytes may reach beyond
    the batch's own (a slice of a larger column), when a closer look decides.
    """
    buffers = text.buffers() if isinstance(text, pa.StringArray) else []
    if len(buffers) == 3 and buffers[2] is not None:
        data = buffers[2].to_pybytes()
        if b"x" not in data and b"X" not in data:
            return False
    return bool(pc.any(pc.match_substring(text, "x", ignore_case=True)).as_py())


def _ids(text: pa.Array, check: _ColumnCheck) -> pa.Array:
    text = pc.utf8_trim_whitespace(text)
    check.report(_mask(pc.greater(pc.utf8_length(text), _MAX_ID_LENGTH)), "is too long")
    # Ids in printable ASCII, as banks' ids nearly always are, cannot match the search.
    if not pc.all(pc.or_(pc.ascii_is_printable(text), pc.equal(text, ""))).as_py():
        check.report(
            _mask(pc.match_substring_regex(text, _UNPRINTABLE)),
            "has control characters or bytes that are not UTF-8",
        )
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, type=pa.string()), text)


_UNPRINTABLE = "[\\x00-\\x1f\\x7f\\x{fffd}]"
