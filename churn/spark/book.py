"""The book as Spark reads it: a table of the session's catalog, or Parquet or CSV files.

Spark reads it (`spark.read.table`, `.parquet`, or `.csv` with every column as text and
a column for the records it cannot split), with each row's provenance from its
`_metadata` (the file, its split's first byte, and a Parquet row's index), and only
the columns the pass needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from churn.record.errors import InvalidInput
from churn.record.validation import check_columns, required_columns
from churn.spark.arrow_pass import BLOCK, CORRUPT, FILE, INDEX, OTHERS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

Format = Literal["csv", "parquet", "table"]


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


def read_book(spark: SparkSession, source: Source) -> tuple[DataFrame, int]:
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
    if source.format != "csv":
        return frame.select(*picked, *provenance), width
    # Spark checks a record's number of fields only when it parses every column: the
    # others are referenced, and folded into one small column rather than carried.
    used = {names[name] for name in required_columns(True)} | {CORRUPT}
    others = [F.col(f"`{name}`") for name in frame.columns if name not in used]
    if others:
        picked.append(F.coalesce(*others).isNull().alias(OTHERS))
    return frame.select(*picked, *provenance, F.col(CORRUPT)), width


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
        [StructField(name, StringType()) for name in header] + [StructField(CORRUPT, StringType())]
    )
    return (
        spark.read.schema(schema)
        .options(**options, mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT)
        .option("enforceSchema", "false")
        .csv(source.location)
    )


def _provenance(frame: DataFrame, source: Source) -> list[Column]:
    """The file, and the row's index in a Parquet file or else its split's first byte,
    where the source has Spark's `_metadata` (files; tables on files); else the table's
    name. Only what the pass needs crosses into Python."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    try:
        fields = frame.select("_metadata").schema["_metadata"].dataType.fieldNames()  # type: ignore[attr-defined]
    except AnalysisException:
        return [F.lit(source.location).alias(FILE), F.lit(None).cast("bigint").alias(BLOCK)]
    if "row_index" in fields:  # the row's number, whatever split it is in
        return [F.col("_metadata.file_path").alias(FILE), F.col("_metadata.row_index").alias(INDEX)]
    return [
        F.col("_metadata.file_path").alias(FILE),
        F.col("_metadata.file_block_start").alias(BLOCK),
    ]
