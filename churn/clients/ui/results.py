"""Reading the service's batch results back, and joining them to the uploaded file.

The results CSV (`row, CustomerId, status, churn_probability, prediction, risk_band,
errors`) numbers rows from 1 for the first data record after the header. It carries no
features, so the columns to group by (the categorical features) are read from the
uploaded file and joined on that row number here.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from churn.record.answers import FileSummary
from churn.record.outcome import CHURN
from churn.record.rows import is_blank
from churn.record.schema import CUSTOMER_ID as ID_COLUMN

SCORED = "scored"


@dataclass(frozen=True)
class BatchResult:
    """What the page shows after a file was scored."""

    file_name: str
    summary: FileSummary
    results: pd.DataFrame  # every row of the results CSV, plus the grouping columns
    csv_bytes: bytes  # the service's results, exactly as it sent them

    @property
    def scored(self) -> pd.DataFrame:
        return self.results[self.results["status"] == SCORED]

    @property
    def rejected(self) -> pd.DataFrame:
        return self.results[self.results["status"] != SCORED]

    @property
    def churn_share(self) -> float:
        if not self.summary.rows_scored:
            return 0.0
        return self.summary.predicted_churn / self.summary.rows_scored

    def by_risk(self) -> pd.DataFrame:
        """Scored customers, riskiest first."""
        return self.scored.sort_values(
            ["churn_probability", "row"], ascending=[False, True], kind="stable"
        )


def load_results(
    results_csv: Path,
    upload: Path,
    group_columns: Sequence[str],
    file_name: str,
    summary: FileSummary,
) -> BatchResult:
    raw = results_csv.read_bytes()
    results = pd.read_csv(
        results_csv,
        dtype={ID_COLUMN: "string", "status": "string", "prediction": "string",
               "risk_band": "string", "errors": "string"},
        keep_default_na=False,
        na_values={"churn_probability": [""]},
    )  # fmt: skip
    results["errors"] = results["errors"].replace("", pd.NA)
    results[ID_COLUMN] = results[ID_COLUMN].replace("", pd.NA)
    uploaded = read_columns(upload, [*group_columns, ID_COLUMN])
    for column in group_columns:
        results[column] = results["row"].map(uploaded.get(column, {})).astype("string")
    # The service sends no id for a rejected row: show the one in the file, as it is.
    sent_ids = results["row"].map(uploaded.get(ID_COLUMN, {})).astype("string")
    results[ID_COLUMN] = results[ID_COLUMN].fillna(sent_ids)
    return BatchResult(file_name, summary, results, raw)


def read_columns(path: Path, columns: Sequence[str]) -> dict[str, dict[int, str]]:
    """The named columns' cells of a CSV, by row number (1 = first data record).

    Read with Python's csv module, one record at a time, so that a ragged file (which
    the service reports row by row) cannot shift the numbering; blank lines are not
    rows (`churn.record.rows`, the service's rule).
    """
    found: dict[str, dict[int, str]] = {}
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next((r for r in reader if not is_blank(r)), [])]
        positions = {name: header.index(name) for name in columns if name in header}
        found = {name: {} for name in positions}
        row = 0
        for record in reader:
            if is_blank(record):
                continue
            row += 1
            for name, position in positions.items():
                if position < len(record):
                    found[name][row] = record[position]
    return found


def churn_rate_by(scored: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of `column`: customers scored and the share predicted to churn."""
    if column not in scored or scored.empty:
        return pd.DataFrame(columns=[column, "customers", "churn_rate"])
    grouped = scored.assign(churn=scored["prediction"] == CHURN).groupby(column, observed=True)
    table = grouped.agg(customers=("row", "size"), churn_rate=("churn", "mean")).reset_index()
    return table.sort_values(column).reset_index(drop=True)
