"""A run's summary: rows in, scored and rejected, counted from the rows written.

Written after the rows, beside them (DIR/_summary, or the table NAME_summary), one row
per run: a run that fails writes none, and `read_summary` finds the last good one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from churn.record.errors import InvalidInput
from churn.record.outcome import LABELS
from churn.record.schema import GEOGRAPHIES
from churn.spark.book import Format, Source
from churn.spark.model import BatchModel
from churn.spark.output import RUN, Sink, check_run_id
from churn.spark.session import spark_errors

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SUMMARY_DDL = f"{RUN} STRING, summary STRING"


class GeographyCounts(BaseModel):
    scored: int
    predicted_churn: int
    predicted_churn_rate: float | None


class ModelUsed(BaseModel):
    model_config = {"protected_namespaces": ()}

    tag: str
    version: str
    sha256: str  # of the batch model file the executors checked
    booster_sha256: str  # the store's digest of its booster
    source: str


class BatchSummary(BaseModel):
    """One run: its rows in, scored and rejected (as written), per Geography too."""

    run: str
    job_id: str
    input: str
    format: Format
    output: str
    rows_in: int
    scored: int
    rejected: int
    by_geography: dict[str, GeographyCounts]
    model: ModelUsed
    scored_at: str
    seconds: float
    master: str


def count_summary(
    spark: SparkSession,
    sink: Sink,
    run: str,
    job_id: str,
    *,
    source: Source,
    model: BatchModel,
    scored_at: datetime,
) -> BatchSummary:
    """Counted from the rows written (three small columns of the run's partition)."""
    from pyspark.sql import functions as F

    written = spark.table(sink.location) if sink.table else spark.read.parquet(sink.location)
    counts = (
        written.where((F.col(RUN) == run) & (F.col("job_id") == job_id))
        .groupBy("status", "Geography", "prediction")
        .count()
        .collect()
    )
    scored = dict.fromkeys(GEOGRAPHIES, 0)
    churn = dict.fromkeys(GEOGRAPHIES, 0)
    rejected = 0
    for status, geography, prediction, count in counts:
        if status == "rejected":
            rejected += count
            continue
        scored[geography] += count
        churn[geography] += count if prediction == LABELS[True] else 0
    total = sum(scored.values()) + rejected
    if total == 0:
        raise InvalidInput(f"{source.location} has no customer rows.")
    return BatchSummary(
        run=run,
        job_id=job_id,
        input=source.location,
        format=source.format,
        output=sink.location,
        rows_in=total,
        scored=sum(scored.values()),
        rejected=rejected,
        by_geography={
            name: GeographyCounts(
                scored=scored[name],
                predicted_churn=churn[name],
                predicted_churn_rate=round(churn[name] / scored[name], 4) if scored[name] else None,
            )
            for name in GEOGRAPHIES
        },
        model=ModelUsed(
            tag=model.tag,
            version=model.version,
            sha256=model.sha256,
            booster_sha256=model.booster_sha256,
            source=model.source,
        ),
        scored_at=scored_at.isoformat(),
        seconds=0.0,
        master=spark.conf.get("spark.master", "") or "",
    )


def read_summary(spark: SparkSession, sink: Sink, run: str | None) -> BatchSummary:
    """The summary of run `run`, or of the latest run that has one."""
    from pyspark.sql import functions as F

    with spark_errors():
        if sink.table:
            if not spark.catalog.tableExists(sink.summary):
                raise InvalidInput(f"{sink.summary} does not exist: no run has finished.")
            frame = spark.table(sink.summary)
        else:
            frame = spark.read.schema(SUMMARY_DDL).json(sink.summary)
        if run is not None:
            frame = frame.where(F.col(RUN) == check_run_id(run))
        rows = frame.orderBy(F.col(RUN).desc()).limit(1).collect()
    if not rows:
        which = f"run {run}" if run else "any run"
        raise InvalidInput(
            f"{sink.location} has no summary of {which}: score a book into it with "
            "`churn batch score` first (a run that did not finish writes none)."
        )
    return BatchSummary.model_validate_json(rows[0]["summary"])
