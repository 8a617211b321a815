"""`churn batch call-list`: the riskiest customers of a scored run, with their reasons.

The N highest churn probabilities among a run's scored rows, overall or per segment,
one line per customer (an id scored twice counts once, at its higher risk; rows
without an id are nobody to call and are left out); ties go to the smaller id, so a
list is the same every time. Spark ranks them (window functions over the run's
partition); only the listed rows reach the driver. Each one's reasons are exact
TreeSHAP contributions (`Scorer.explain`, the code behind /v2/explain) from the model
file that scored the run, read again from where the run's summary says and refused
unless its digest is the recorded one: the three features that push the customer's
risk up the most, with their values and their effect on the log-odds. Its ids are
safe to open in a spreadsheet (`churn.record.spreadsheet.spreadsheet_safe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from churn.record.errors import InvalidInput, ModelIntegrityError
from churn.record.outcome import ANSWER_DIGITS
from churn.record.schema import CUSTOMER_ID, FEATURE_NAMES, CustomerFeatures
from churn.record.spreadsheet import spreadsheet_safe
from churn.spark import model as batch_model
from churn.spark.output import RUN, Sink
from churn.spark.session import quiet_pyspark, spark_errors
from churn.spark.summary import BatchSummary, read_summary

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from churn.scoring.scorer import Scorer

REASONS = 3
# The run stored each probability rounded to ANSWER_DIGITS places (half a unit at most
# away from what it computed); the explanation's own probability, computed here and not
# rounded, may differ from the run's in the last float32 bits of a different tree walk.
_TOLERANCE = 0.5 * 10**-ANSWER_DIGITS + 1e-7


@dataclass(frozen=True)
class CallList:
    table: pa.Table
    path: str
    summary: BatchSummary


def build_call_list(
    spark: SparkSession,
    sink: Sink,
    top: int,
    *,
    by: str | None = None,
    out: str | None = None,
    run: str | None = None,
    model_sha256: str | None = None,
) -> CallList:
    with spark_errors(), quiet_pyspark():
        summary = read_summary(spark, sink, run)
        recorded = summary.model
        if model_sha256 is not None and model_sha256.lower() != recorded.sha256:
            raise ModelIntegrityError(
                f"Run {summary.run} was scored by the model with SHA-256 {recorded.sha256}, "
                f"not {model_sha256}."
            )
        model = _model(spark, recorded.source, recorded.sha256)
        rows = _top_rows(spark, sink, summary, top, by)
        table = _table(rows, model.scorer(), by)
        target = out or (
            f"{sink.location}_call_list" if sink.table else f"{sink.location}/_call_list"
        )
        _write(spark, table, target, summary.run)
    return CallList(table, target, summary)


def _model(spark: SparkSession, source: str, sha256: str) -> batch_model.BatchModel:
    if source.startswith("store:"):
        model = batch_model.from_store(source.removeprefix("store:"))
        if model.sha256 != sha256:
            raise ModelIntegrityError(
                f"The run was scored by the model with SHA-256 {sha256}; {source} now "
                f"holds {model.sha256}, which cannot explain it."
            )
        return model
    return batch_model.read(spark, source, sha256)


def _top_rows(
    spark: SparkSession, sink: Sink, summary: BatchSummary, top: int, by: str | None
) -> list[dict[str, Any]]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rows = spark.table(sink.location) if sink.table else spark.read.parquet(sink.location)
    scored = rows.where(
        (F.col(RUN) == summary.run)
        & (F.col("job_id") == summary.job_id)
        & (F.col("status") == "scored")
        & F.col(CUSTOMER_ID).isNotNull()
    )
    segment = [F.col(by)] if by else []
    riskiest = [F.col("churn_probability").desc(), F.col(CUSTOMER_ID).asc()]
    once = Window.partitionBy(*segment, F.col(CUSTOMER_ID)).orderBy(*riskiest)
    customers = scored.withColumn("_once", F.row_number().over(once)).where(F.col("_once") == 1)
    shown = [CUSTOMER_ID, "churn_probability", "risk_band", "model_version", *FEATURE_NAMES]
    if not by:
        # Spark's top N (TakeOrderedAndProject): each task keeps its N riskiest. A window
        # over no partition would move every row to one task once N is over Spark's
        # window group limit (1,000), and warns that it may on every run.
        riskiest_first = customers.orderBy(*riskiest).limit(top).select(*shown).collect()
        return [{"rank": rank, **row.asDict()} for rank, row in enumerate(riskiest_first, 1)]
    ranked = Window.partitionBy(*segment).orderBy(*riskiest)
    listed = (
        customers.withColumn("rank", F.row_number().over(ranked))
        .where(F.col("rank") <= top)
        .select(*segment, "rank", *shown)
        .collect()
    )
    found = [row.asDict() for row in listed]
    found.sort(key=lambda row: (row[by], row["rank"]))
    return found


def _table(rows: list[dict[str, Any]], scorer: Scorer, by: str | None) -> pa.Table:
    customers = [
        CustomerFeatures.model_validate({name: row[name] for name in FEATURE_NAMES}) for row in rows
    ]
    _check_same(scorer.probabilities(scorer.matrix_of(customers), observe=False), rows)
    reasons: list[list[str | None]] = [[] for _ in range(REASONS)]
    for customer in customers:
        _, factors = scorer.explain(customer)
        up = [
            f"{factor.feature} = {factor.value} (+{factor.contribution:.3f})"
            for factor in factors
            if factor.direction == "up"
        ][:REASONS]
        for index in range(REASONS):
            reasons[index].append(up[index] if index < len(up) else None)
    columns: dict[str, Any] = {}
    if by is not None:
        columns[by] = pa.array([row[by] for row in rows], pa.string())
    columns |= {
        "rank": pa.array([row["rank"] for row in rows], pa.int64()),
        CUSTOMER_ID: spreadsheet_safe(pa.array([row[CUSTOMER_ID] for row in rows], pa.string())),
        "churn_probability": pa.array([row["churn_probability"] for row in rows], pa.float64()),
        "risk_band": pa.array([row["risk_band"] for row in rows], pa.string()),
    }
    for index in range(REASONS):
        columns[f"reason_{index + 1}"] = pa.array(reasons[index], pa.string())
    columns["model_version"] = pa.array([row["model_version"] for row in rows], pa.string())
    return pa.table(columns)


def _check_same(computed: np.ndarray, rows: list[dict[str, Any]]) -> None:
    """The model explains the probabilities the run stored for the listed customers: what
    it computes now, not rounded, against what the run stored, rounded once."""
    stored = np.array([row["churn_probability"] for row in rows], dtype=np.float64)
    if len(stored) and float(np.max(np.abs(computed - stored))) > _TOLERANCE:
        raise ModelIntegrityError(
            "The model explains a different probability than the one scored for a listed "
            "customer; the scored run and its model do not belong together."
        )


def _write(spark: SparkSession, table: pa.Table, target: str, run: str) -> None:
    """The list as one CSV file per run (Spark's writer: any storage the platform reaches)."""
    if table.num_rows == 0:
        raise InvalidInput("No scored customer has an id: there is nobody to call.")
    frame = spark.createDataFrame(table.to_pylist(), schema=_ddl(table.schema))
    (
        frame.coalesce(1)
        .orderBy(*([c for c in table.column_names[:1] if c != "rank"]), "rank")
        .write.mode("overwrite")
        .option("header", "true")
        .option("escape", '"')
        .csv(f"{target}/{RUN}={run}")
    )


def _ddl(schema: pa.Schema) -> str:
    kinds = {pa.string(): "STRING", pa.int64(): "BIGINT", pa.float64(): "DOUBLE"}
    return ", ".join(f"`{field.name}` {kinds[field.type]}" for field in schema)
