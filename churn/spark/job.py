"""`churn batch score`: every row of the book scored or rejected, with Spark's own parts.

Spark reads the book (`spark.read.table`, `.parquet`, or `.csv` with every column as
text and a column for the records it cannot split), and one `mapInArrow` pass checks
each row with the service's `churn.record.csvio.validate_raw` (a bad row gets the
service's reasons) and scores the rest with `churn.scoring.scorer.Scorer`, in the
executors' Python workers, Arrow batch by Arrow batch. Each input record gives exactly
one output row, with its status (`scored` or `rejected`), so rows_in = scored +
rejected holds by construction, and the summary counts what was written.

Spark writes the rows: into a table (`writeTo(...).overwritePartitions()`, or for a
Parquet table of the session catalog an `insertInto` overwriting its partition
dynamically), or into a Parquet folder partitioned the same way; both replace the
run's partition (`run=ID`) and nothing else, at commit, through the platform's
committer. A rerun of the same run id replaces its rows; a run that fails leaves the
last good one as it was. The summary of each run goes beside the rows (DIR/_summary,
or the table NAME_summary), after them.

Row numbers. Spark gives each row its file (`_metadata.file_path`). A rejected row is
found by file and CustomerId; its number in the file (from 1, the first record after
the header, as the service numbers rows) is given where one pass knows it: a Parquet
row's `_metadata.row_index`, or a CSV row in the task that reads its file from the
start (a whole small, compressed or --multiline file, or the first split of a large
one). Elsewhere `row` is empty: counting the records of the splits before would take a
second pass over the book.
"""

from __future__ import annotations

import csv
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from churn.record.csv_reading import ragged_record
from churn.record.errors import InvalidInput
from churn.record.outcome import ANSWER_DIGITS, BANDS, LABELS
from churn.record.schema import CUSTOMER_ID, FEATURE_SPECS, GEOGRAPHIES
from churn.record.validation import check_columns, required_columns, validate_raw
from churn.spark.model import BatchModel
from churn.spark.session import condition_of, quiet_pyspark, spark_errors

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from churn.scoring.scorer import Scorer

Format = Literal["csv", "parquet", "table"]

_ARROW = {"integer": pa.int64(), "number": pa.float64()}
_SQL = {"integer": "BIGINT", "number": "DOUBLE"}
RESULT_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("row", pa.int64()),
        (CUSTOMER_ID, pa.string()),
        ("status", pa.string()),
        ("reasons", pa.string()),
        ("churn_probability", pa.float64()),
        ("prediction", pa.string()),
        ("risk_band", pa.string()),
        *[(spec.name, _ARROW.get(spec.kind, pa.string())) for spec in FEATURE_SPECS],
        ("model_version", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
        ("job_id", pa.string()),
    ]
)
RESULT_DDL = ", ".join(
    f"`{f.name}` "
    + {
        pa.string(): "STRING",
        pa.int64(): "BIGINT",
        pa.float64(): "DOUBLE",
        RESULT_SCHEMA.field("scored_at").type: "TIMESTAMP",
    }[f.type]
    for f in RESULT_SCHEMA
)
# The run's constants, which Spark adds after the pass rather than carry across it per row.
_CONSTANTS = ("model_version", "scored_at", "job_id")
PASS_SCHEMA = pa.schema([f for f in RESULT_SCHEMA if f.name not in _CONSTANTS])
PASS_DDL = ", ".join(
    part for part in RESULT_DDL.split(", ") if part.split("`")[1] not in _CONSTANTS
)
RUN = "run"  # the partition column: one run's rows, replaced whole by a rerun
SUMMARY_DDL = f"{RUN} STRING, summary STRING"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# The hidden columns the pass reads beside the customer's: provenance and corrupt records.
_FILE, _BLOCK, _INDEX, _CORRUPT = "_churn_file", "_churn_block", "_churn_row_index", "_churn_bad"
_LABELS = pa.array(LABELS)
_BANDS = pa.array(list(BANDS))


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


@dataclass(frozen=True)
class Source:
    """Where the book is: a table of the session's catalog, or Parquet or CSV files."""

    location: str
    format: Format
    multiline: bool = False  # CSV: quoted cells may hold line breaks (each file one task)

    @classmethod
    def of(cls, location: str, format_: str | None, *, multiline: bool = False) -> Source:
        if format_ is None:
            name = location.rstrip("/").lower()
            if name.endswith((".parquet", ".pq")):
                format_ = "parquet"
            elif re.search(r"\.(csv|txt)(\.(gz|bz2|deflate|lz4|snappy|zst))?$", name):
                format_ = "csv"
            else:
                raise InvalidInput(
                    f"Which format is {location}? Add --format csv or --format parquet."
                )
        if format_ not in ("csv", "parquet", "table"):
            raise InvalidInput(f"--format {format_} is not csv or parquet.")
        return cls(location, format_, multiline=multiline)  # type: ignore[arg-type]


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
        frame, width = _read(spark, source)
        task = _Task(model, width)
        from pyspark.sql import functions as F

        constants = {
            "model_version": F.lit(model.version),
            "scored_at": F.lit(scored_at).cast("timestamp"),
            "job_id": F.lit(job_id),
        }
        passed = frame.mapInArrow(task, PASS_DDL)
        results = passed.select(
            *[constants.get(f.name, F.col(f.name)).alias(f.name) for f in RESULT_SCHEMA],
            F.lit(run).alias(RUN),
        )
        write_partition(spark, results, sink)
        summary = _summary(spark, sink, run, job_id, source, model, scored_at)
        summary.seconds = round(time.monotonic() - started, 3)
        row = spark.createDataFrame([(run, summary.model_dump_json())], SUMMARY_DDL)
        write_partition(spark, row, Sink(sink.summary, sink.table))
    return summary


def _read(spark: SparkSession, source: Source) -> tuple[DataFrame, int]:
    """The book with its columns as the pass reads them, and how many fields a record has."""
    from pyspark.sql import functions as F

    reader = spark.read
    if source.format == "table":
        frame = reader.table(source.location)
    elif source.format == "parquet":
        frame = reader.parquet(source.location)
    else:
        frame = _read_csv(spark, source)
    names = _names(frame.columns)
    check_columns(list(names), require_id=True)
    width = len(frame.columns) - (source.format == "csv")
    picked = [F.col(f"`{names[name]}`").alias(name) for name in required_columns(True)]
    provenance = _provenance(frame, source)
    corrupt = F.lit(None).cast("string")
    if source.format == "csv":
        corrupt = F.col(_CORRUPT)
        # Spark checks a record's number of fields only when it parses every column.
        used = {names[name] for name in required_columns(True)} | {_CORRUPT}
        picked += [
            F.col(f"`{name}`").alias(f"_churn_other_{index}")
            for index, name in enumerate(frame.columns)
            if name not in used
        ]
    return frame.select(*picked, *provenance, corrupt.alias(_CORRUPT)), width


def _names(columns: list[str]) -> dict[str, str]:
    """Each column by its name as the service reads a header: spaces and a BOM dropped."""
    return {name.strip().lstrip("\ufeff").strip(): name for name in reversed(columns)}


def _read_csv(spark: SparkSession, source: Source) -> DataFrame:
    """Every column as text, the header's names kept exactly (each file's header must
    be the same), and the records that do not split into those columns kept whole."""
    from pyspark.sql.types import StringType, StructField, StructType

    options = {"header": "true", "escape": '"', "multiLine": str(source.multiline).lower()}
    header = spark.read.options(**options).csv(source.location).columns
    schema = StructType(
        [StructField(name, StringType()) for name in header] + [StructField(_CORRUPT, StringType())]
    )
    return (
        spark.read.schema(schema)
        .options(**options, mode="PERMISSIVE", columnNameOfCorruptRecord=_CORRUPT)
        .option("enforceSchema", "false")
        .csv(source.location)
    )


def _provenance(frame: DataFrame, source: Source) -> list[Column]:
    """The file, its split's first byte and the row's index in a Parquet file, where the
    source has Spark's `_metadata` (files; tables on files); else the table's name."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    index = F.lit(None).cast("bigint")
    try:
        fields = frame.select("_metadata").schema["_metadata"].dataType.fieldNames()  # type: ignore[attr-defined]
    except AnalysisException:
        return [F.lit(source.location).alias(_FILE), F.lit(None).cast("bigint").alias(_BLOCK),
                index.alias(_INDEX)]  # fmt: skip
    if "row_index" in fields:
        index = F.col("_metadata.row_index")
    return [
        F.col("_metadata.file_path").alias(_FILE),
        F.col("_metadata.file_block_start").alias(_BLOCK),
        index.alias(_INDEX),
    ]


@dataclass(frozen=True)
class _Task:
    """The function each Python worker runs over its Arrow batches (pickled with the
    model file's bytes and digest, which the worker checks before loading them)."""

    model: BatchModel
    width: int  # fields in a CSV record: what a corrupt record is compared with

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = self.model.scorer()
        seen: dict[tuple[str, int], int] = {}  # records so far per file split, in this task
        for batch in batches:
            if batch.num_rows:
                yield self._results(scorer, batch, seen)

    def _results(
        self, scorer: Scorer, batch: pa.RecordBatch, seen: dict[tuple[str, int], int]
    ) -> pa.RecordBatch:
        corrupt = batch.column(_CORRUPT)
        blank = _mask(pc.equal(pc.utf8_trim_whitespace(corrupt), ""))
        if blank.any():  # a line of spaces in a --multiline file: no record, as the service
            batch = batch.filter(pa.array(~blank))
            corrupt = batch.column(_CORRUPT)
        rows = _row_numbers(batch, seen)
        files = batch.column(_FILE)
        bad = _mask(pc.is_valid(corrupt))
        good = np.flatnonzero(~bad)
        raw = {
            name: pc.fill_null(pc.cast(batch.column(name), pa.string()), "").take(good)
            for name in required_columns(True)
        }
        # Positions from 1 stand for rows here; the real numbers are put back below.
        checked = validate_raw(raw, first_row=1, row_numbers=good + 1)
        probabilities = scorer.score_frame(checked.features)
        kept = checked.rows - 1
        count = len(kept)
        scored = {
            "source_file": files.take(kept),
            "row": rows.take(kept),
            CUSTOMER_ID: checked.ids,
            "status": pa.repeat(pa.scalar("scored"), count),
            "reasons": pa.nulls(count, pa.string()),
            "churn_probability": pa.array(np.round(probabilities, ANSWER_DIGITS)),
            "prediction": _words(_LABELS, scorer.labels(probabilities)),
            "risk_band": _words(_BANDS, scorer.band_codes(probabilities)),
        }
        for spec in FEATURE_SPECS:
            column = pa.array(checked.features[spec.name])
            scored[spec.name] = column.cast(_ARROW.get(spec.kind, pa.string()))
        reasons = checked.rejected_reasons()
        for position in np.flatnonzero(bad).tolist():
            reasons[position + 1] = self._corrupt_reason(corrupt[position].as_py(), rows, position)
        positions = np.array(sorted(reasons), dtype=np.int64) - 1
        # A record of the wrong number of fields has no id to trust, as in the service.
        ids = [checked.rejected_ids.get(int(p) + 1) for p in positions]
        rejected = {
            "source_file": files.take(positions),
            "row": rows.take(positions),
            CUSTOMER_ID: pa.array(ids, pa.string()),
            "status": pa.repeat(pa.scalar("rejected"), len(positions)),
            "reasons": pa.array([reasons[int(p) + 1] for p in positions], pa.string()),
        }
        return _combine(scored, rejected, len(positions))

    def _corrupt_reason(self, text: str, rows: pa.Array, position: int) -> str:
        """The service's reason for a record of the wrong number of fields; a record cut
        off by a quoted cell that goes on to the next line says how to read it whole."""
        fields = next(csv.reader([text]), [])
        row = rows[position].as_py() or 0
        reason = ragged_record(len(fields), self.width, row, unclosed=any(
            "\n" in value or "\r" in value for value in fields)).reason()  # fmt: skip
        if text.count('"') % 2:
            reason += "; a quoted cell in it goes on to the next line: score with --multiline"
        return reason


def _words(words: pa.Array, codes: np.ndarray) -> pa.Array:
    return pc.take(words, pa.array(codes.astype(np.int64)))


def _combine(
    scored: dict[str, pa.Array],
    rejected: dict[str, pa.Array],
    rejected_count: int,
) -> pa.RecordBatch:
    columns = []
    for field in PASS_SCHEMA:
        first = scored[field.name].cast(field.type)
        second = rejected.get(field.name)
        second = pa.nulls(rejected_count, field.type) if second is None else second
        columns.append(pa.concat_arrays([first, second.cast(field.type)]))
    return pa.RecordBatch.from_arrays(columns, schema=PASS_SCHEMA)


def _row_numbers(batch: pa.RecordBatch, seen: dict[tuple[str, int], int]) -> pa.Array:
    """Each row's number in its file, from 1, where this task can know it (module doc)."""
    index = batch.column(_INDEX)
    if index.null_count == 0:
        return pc.add(index, 1)
    files = batch.column(_FILE).to_pylist()
    blocks = batch.column(_BLOCK).to_pylist()
    numbers: list[int | None] = []
    for file, block in zip(files, blocks, strict=True):
        key = (file, block)
        seen[key] = seen.get(key, 0) + 1
        numbers.append(seen[key] if block == 0 else None)
    return pa.array(numbers, pa.int64())


def _mask(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


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


def _summary(
    spark: SparkSession,
    sink: Sink,
    run: str,
    job_id: str,
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
