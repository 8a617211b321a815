"""`churn batch score`: every row of the book scored or rejected, with Spark's own parts.

Spark reads the book (`churn.spark.book`: `spark.read.table`, `.parquet`, or `.csv`
with every column as text and a column for the records it cannot split), and one
`mapInArrow` pass (`churn.spark.arrow_pass`) checks each row with the service's rules
(a bad row gets the service's reasons) and scores the rest with its `Scorer`, in the
executors' Python workers, Arrow batch by Arrow batch, building the rows as the file
scorer does (`churn.scoring.results`). Each input record gives exactly one output row,
with its status (`scored` or `rejected`), so rows_in = scored + rejected holds by
construction, and the summary (`churn.spark.summary`) counts what was written.

Spark writes the rows (`churn.spark.output`): into a table
(`writeTo(...).overwritePartitions()`, or for a Parquet table of the session catalog an
`insertInto` overwriting its partition dynamically), or into a Parquet folder
partitioned the same way; both replace the run's partition (`run=ID`) and nothing
else, at commit, through the platform's committer. A rerun of the same run id replaces
its rows; a run that fails leaves the last good one as it was. The summary of each run
goes beside the rows (DIR/_summary, or the table NAME_summary), after them.

Row numbers. Spark gives each row its file (`_metadata.file_path`). A rejected row is
found by file and CustomerId; its number in the file (from 1, the first record after
the header, as the service numbers rows) is given where one pass knows it: a Parquet
row's `_metadata.row_index`, or a CSV row in the task that reads its file from the
start (a whole small, compressed or --multiline file, or the first split of a large
one). Elsewhere `row` is empty: counting the records of the splits before would take a
second pass over the book.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from churn.spark.arrow_pass import PASS_DDL, RESULT_SCHEMA, ScoringPass
from churn.spark.book import Source, read_book
from churn.spark.model import BatchModel
from churn.spark.output import RUN, Sink, check_run_id, write_partition
from churn.spark.session import quiet_pyspark, spark_errors
from churn.spark.summary import SUMMARY_DDL, BatchSummary, count_summary

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# datetime.UTC is 3.11's; the batch wheel (deploy/batch) runs on 3.10 too.
UTC = timezone.utc  # noqa: UP017


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def score_book(
    spark: SparkSession, source: Source, sink: Sink, model: BatchModel, *, run: str
) -> BatchSummary:
    """Score the book into the sink's partition `run`, then write the run's summary."""
    started = time.monotonic()
    run = check_run_id(run)
    scored_at = datetime.now(UTC).replace(microsecond=0)
    job_id = uuid.uuid4().hex
    with spark_errors(), quiet_pyspark():
        from pyspark.sql import functions as F

        frame, width = read_book(spark, source)
        constants = {
            "model_version": F.lit(model.version),
            "scored_at": F.lit(scored_at).cast("timestamp"),
            "job_id": F.lit(job_id),
        }
        passed = frame.mapInArrow(ScoringPass(model, width), PASS_DDL)
        results = passed.select(
            *[constants.get(f.name, F.col(f.name)).alias(f.name) for f in RESULT_SCHEMA],
            F.lit(run).alias(RUN),
        )
        write_partition(spark, results, sink)
        summary = count_summary(
            spark, sink, run, job_id, source=source, model=model, scored_at=scored_at
        )
        summary.seconds = round(time.monotonic() - started, 3)
        row = spark.createDataFrame([(run, summary.model_dump_json())], SUMMARY_DDL)
        write_partition(spark, row, Sink(sink.summary, sink.table))
    return summary
