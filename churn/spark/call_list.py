"""`churn batch call-list`: the riskiest customers of a scored book, with their reasons.

The N highest churn probabilities in DIR/scored, overall or per segment, one line per
customer (an id scored twice counts once, at its higher risk; rows without an id are
nobody to call and are left out). Ties go to the smaller id, so a list is the same
every time. Each Spark task reads one part of DIR/scored with pyarrow and hands back
its riskiest rows per segment (a top-k, not a sort of the book); the driver merges
them. Each customer's reasons are exact TreeSHAP contributions from the model that
scored DIR, reloaded by the tag or file recorded in summary.json and refused if
its digest is not the recorded one; they come from `ChurnPredictor.explain`, the code
behind /v2/explain, for the listed rows only. The reasons are the three features that
push the customer's risk up the most, with their values and their effect on the
log-odds. The CSV's ids are safe to open in a spreadsheet (`csvio.spreadsheet_safe`).
"""

from __future__ import annotations

import io as stdio
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyspark import SparkContext

from churn.record.answers import Explanation
from churn.record.csvio import spreadsheet_safe
from churn.record.errors import BadRequest, ModelIntegrityError
from churn.record.schema import CUSTOMER_ID, FEATURE_NAMES, Customer
from churn.scoring.predictor import ChurnPredictor
from churn.spark import io
from churn.spark.job import BatchSummary
from churn.spark.model import resolve
from churn.spark.session import quiet_pyspark, spark_errors

REASONS = 3
_TOLERANCE = 1e-6  # probabilities are stored rounded to six places, as the service rounds


@dataclass(frozen=True)
class CallList:
    table: pa.Table
    path: str
    summary: BatchSummary


def read_summary(directory: str) -> BatchSummary:
    if not io.exists(io.child(directory, "summary.json")):
        raise BadRequest(
            f"{directory} has no summary.json: score a book into it with `churn batch score` "
            "first (a run that did not finish writes none)."
        )
    return BatchSummary.model_validate_json(io.read_bytes(io.child(directory, "summary.json")))


def build_call_list(
    context: SparkContext,
    directory: str,
    top: int,
    *,
    by: str | None = None,
    out: str | None = None,
) -> CallList:
    with spark_errors(), quiet_pyspark():
        summary = read_summary(directory)
        recorded = summary.model
        model = resolve(recorded.source)
        if model.ref.sha256 != recorded.sha256:
            raise ModelIntegrityError(
                f"{directory} was scored by the model with SHA-256 {recorded.sha256}; "
                f"{recorded.source} now holds {model.ref.sha256}, which cannot explain it."
            )
        predictor = ChurnPredictor(model.loaded)
        rows = _top_rows(context, _parts(io.child(directory, "scored")), top, by)
        table = _table(rows, predictor, by)
        target = out or f"{directory}/call-list.csv"
        buffer = stdio.BytesIO()
        pacsv.write_csv(table, buffer)
        io.write_bytes(target, buffer.getvalue())
    return CallList(table, target, summary)


def _parts(folder: str) -> list[str]:
    parts = io.parquet_parts(folder, missing_ok=True)
    if not parts:
        raise BadRequest(f"{folder} holds no Parquet files to list customers from.")
    return parts


def _top_rows(
    context: SparkContext, parts: list[str], top: int, by: str | None
) -> list[dict[str, Any]]:
    """The `top` riskiest distinct ids per segment, without sorting the whole book.

    Each task keeps the first `fetch` rows per segment of its part; an id that appears
    more than once can leave a segment short, so fetch grows until each segment has
    `top` distinct ids or holds no more.
    """
    fetch = top
    while True:
        found = context.parallelize(parts, len(parts)).flatMap(_Riskiest(fetch, by))
        rows = sorted(found.collect(), key=lambda row: _order(row, by))
        kept: dict[Any, int] = {}
        riskiest = []
        for row in rows:  # the first `fetch` of each segment, as one sort of the book has them
            segment = row[by] if by else None
            kept[segment] = kept.get(segment, 0) + 1
            if kept[segment] <= fetch:
                riskiest.append(row)
        picked, short = _distinct(riskiest, top, fetch, by)
        if not short:
            return picked
        fetch *= 2


def _order(row: dict[str, Any], by: str | None) -> tuple[Any, ...]:
    return (row[by] if by else "", -row["churn_probability"], row[CUSTOMER_ID])


@dataclass(frozen=True)
class _Riskiest:
    """One part's `fetch` riskiest rows with an id, per segment."""

    fetch: int
    by: str | None

    def __call__(self, part: str) -> list[dict[str, Any]]:
        system, path = io.locate(part)
        table = pq.read_table(path, filesystem=system)
        table = table.filter(pc.is_valid(table.column(CUSTOMER_ID)))
        keys = [("churn_probability", "descending"), (CUSTOMER_ID, "ascending")]
        segments = [table]
        if self.by is not None:
            values = pc.unique(table.column(self.by)).to_pylist()
            segments = [table.filter(pc.equal(table.column(self.by), value)) for value in values]
        rows: list[dict[str, Any]] = []
        for segment in segments:
            count = min(self.fetch, segment.num_rows)
            if count:
                chosen = pc.select_k_unstable(segment, k=count, sort_keys=keys)
                rows += segment.take(chosen).to_pylist()
        return rows


def _distinct(
    rows: list[dict[str, Any]], top: int, fetch: int, by: str | None
) -> tuple[list[dict[str, Any]], bool]:
    picked: list[dict[str, Any]] = []
    seen: set[tuple[Any, str]] = set()
    kept: dict[Any, int] = {}
    fetched: dict[Any, int] = {}
    for row in rows:
        segment = row[by] if by else None
        fetched[segment] = fetched.get(segment, 0) + 1
        key = (segment, row[CUSTOMER_ID])
        if key in seen or kept.get(segment, 0) >= top:
            continue
        seen.add(key)
        kept[segment] = kept.get(segment, 0) + 1
        picked.append(row)
    short = any(kept.get(segment, 0) < top and fetched[segment] == fetch for segment in fetched)
    return picked, short


def _table(rows: list[dict[str, Any]], predictor: ChurnPredictor, by: str | None) -> pa.Table:
    ranks: list[int] = []
    reasons: list[list[str | None]] = [[] for _ in range(REASONS)]
    previous: Any = object()
    rank = 0
    for row in rows:
        segment = row[by] if by else None
        rank = rank + 1 if segment == previous else 1
        previous = segment
        ranks.append(rank)
        explanation = predictor.explain(
            Customer(CustomerId=row[CUSTOMER_ID], **{name: row[name] for name in FEATURE_NAMES})
        )
        _check_same(explanation, row)
        top = _reasons(explanation)
        for index in range(REASONS):
            reasons[index].append(top[index] if index < len(top) else None)
    columns: dict[str, Any] = {}
    if by is not None:
        columns[by] = pa.array([row[by] for row in rows], pa.string())
    columns |= {
        "rank": pa.array(ranks, pa.int64()),
        CUSTOMER_ID: spreadsheet_safe(pa.array([row[CUSTOMER_ID] for row in rows], pa.string())),
        "churn_probability": pa.array([row["churn_probability"] for row in rows], pa.float64()),
        "risk_band": pa.array([row["risk_band"] for row in rows], pa.string()),
    }
    for index in range(REASONS):
        columns[f"reason_{index + 1}"] = pa.array(reasons[index], pa.string())
    columns["model_version"] = pa.array([row["model_version"] for row in rows], pa.string())
    return pa.table(columns)


def _reasons(explanation: Explanation) -> list[str]:
    """The features that raise this customer's risk most, largest first."""
    return [
        f"{factor.feature} = {factor.value} (+{factor.contribution:.3f})"
        for factor in explanation.factors
        if factor.direction == "up"
    ][:REASONS]


def _check_same(explanation: Explanation, row: dict[str, Any]) -> None:
    if abs(explanation.prediction.churn_probability - row["churn_probability"]) > _TOLERANCE:
        raise ModelIntegrityError(
            "The model explains a different probability than the one scored for a listed "
            "customer; the scored book and its model do not belong together."
        )
