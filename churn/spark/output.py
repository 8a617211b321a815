"""Where the rows go, and how a run replaces its own rows and nothing else.

Spark writes the rows: into a table (`writeTo(...).overwritePartitions()`, or for a
Parquet table of the session catalog an `insertInto` overwriting its partition
dynamically), or into a Parquet folder partitioned the same way; both replace the
run's partition (`run=ID`) and nothing else, at commit, through the platform's
committer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from churn.record.errors import InvalidInput
from churn.spark.session import condition_of

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RUN = "run"  # the partition column: one run's rows, replaced whole by a rerun
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Sink:
    """Where the rows go: a table of the session's catalog, or a Parquet folder."""

    location: str
    table: bool

    @property
    def summary(self) -> str:
        return f"{self.location}_summary" if self.table else f"{self.location}/_summary"


def check_run_id(run: str) -> str:
    if not _RUN_ID.fullmatch(run):
        raise InvalidInput(
            f"--run-id {run!r}: use letters, digits, '.', '_' or '-' (at most 64), "
            "such as the book's date, 2026-11-29."
        )
    return run


def write_partition(spark: SparkSession, frame: DataFrame, sink: Sink) -> None:
    """Replace partition `run` of the sink with `frame`, at commit (others untouched).

    A folder gets Parquet (JSON for a summary) with Spark's dynamic partition overwrite,
    per write; a table, created if missing, `overwritePartitions()`, or for a session
    catalog's Parquet table (a v1 table, which has no such write) an `insertInto` that
    the table's own `partitionOverwriteMode` option makes dynamic.
    """
    from pyspark.sql import functions as F

    summary = "summary" in frame.columns  # a summary folder is JSON, the rows Parquet
    if not sink.table:
        writer = frame.write.partitionBy(RUN).mode("overwrite")
        writer = writer.option("partitionOverwriteMode", "dynamic")
        if summary:
            writer.json(sink.location)
        else:
            writer.parquet(sink.location)
        return
    if not spark.catalog.tableExists(sink.location):
        # The session's own default source (Parquet, or Delta on Databricks): Spark 3.5
        # would otherwise make a Hive table, which a catalog without Hive refuses.
        source = spark.conf.get("spark.sql.sources.default", "parquet") or "parquet"
        (
            frame.writeTo(sink.location)
            .using(source)
            .partitionedBy(F.col(RUN))
            .option("partitionOverwriteMode", "dynamic")
            .create()
        )
        return
    columns = spark.table(sink.location).columns
    ordered = frame.select(*[F.col(f"`{name}`") for name in columns])
    try:
        ordered.writeTo(sink.location).overwritePartitions()
    except Exception as error:
        if "v1 table" not in str(error).lower() and condition_of(error) != (
            "UNSUPPORTED_FEATURE.TABLE_OPERATION"
        ):
            raise
        _require_dynamic(spark, sink.location)
        ordered.write.mode("overwrite").insertInto(sink.location)


def _require_dynamic(spark: SparkSession, table: str) -> None:
    """A v1 table overwrites only the partitions written if it says so itself; without
    it, `insertInto` would replace every run, so the job refuses it."""
    created = str(spark.sql(f"SHOW CREATE TABLE {table}").collect()[0][0])
    if not re.search(r"'partitionOverwriteMode'\s*=\s*'dynamic'", created, re.IGNORECASE):
        raise InvalidInput(
            f"{table} is a v1 table that would be overwritten whole: give it "
            f"OPTIONS ('partitionOverwriteMode' = 'dynamic') (as churn batch creates it), "
            "or use a Delta or Iceberg table."
        )
