"""`churn batch score`: every row of the book scored or rejected, never collected.

Spark reads the files (CSV as lines, Parquet as columns) and hands each Python worker
Arrow batches (`mapInArrow`). There each batch goes through the service's own code:
`churn.record.csvio.validate_raw` checks every cell and gives a bad row the service's reasons,
`churn.scoring.scorer.Scorer` scores the rest. A CSV's lines are split into fields by Arrow's
CSV reader, as the service's are, and a line with too few or too many fields gets the
service's reason for it.

Rows are numbered per file from 1, the first record after the header, as the service
numbers them. A Spark task reads a block of a file without knowing how many records
came before it, so each task counts the records of its blocks; once all blocks are
read the driver adds up those counts per file, and a rejected row's number is the
records before its block plus its place in the block. The counts travel back as an
accumulator keyed by block, so a task that runs twice reports the same numbers, not
twice as many; they also give the summary, checked against what was written.

One difference from the service: a CSV line break inside a quoted cell splits that
record in two here (Spark reads lines in parallel), and both halves are rejected.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import BaseModel
from pyspark import Accumulator, AccumulatorParam, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from churn.record.csvio import CustomerBatch, Header, ragged_record, required_columns, validate_raw
from churn.record.errors import InvalidInput, Problem
from churn.record.outcome import BANDS, LABELS
from churn.record.schema import CUSTOMER_ID, FEATURE_NAMES, FEATURE_SPECS, GEOGRAPHIES
from churn.spark import io
from churn.spark.model import DriverModel, ModelRef, executor_scorer, ship, shipping_folder
from churn.spark.session import quiet_pyspark, spark_errors

_SPARK_TYPES = {"integer": ("long", pa.int64()), "number": ("double", pa.float64())}
_FEATURE_TYPES = [
    (spec.name, *_SPARK_TYPES.get(spec.kind, ("string", pa.string()))) for spec in FEATURE_SPECS
]
# What the Python workers hand back: a scored row has no reasons, a rejected one has
# no probability or features, and says where it was.
_RESULTS = pa.schema(
    [
        (CUSTOMER_ID, pa.string()),
        ("churn_probability", pa.float64()),
        ("prediction", pa.string()),
        ("risk_band", pa.string()),
        *[(name, arrow) for name, _, arrow in _FEATURE_TYPES],
        ("source_file", pa.string()),
        ("block", pa.int64()),
        ("position", pa.int64()),
        ("reasons", pa.string()),
    ]
)
SCORED_COLUMNS = (
    CUSTOMER_ID,
    "churn_probability",
    "prediction",
    "risk_band",
    "model_version",
    "scored_at",
    *FEATURE_NAMES,
)
REJECTED_COLUMNS = ("source_file", "row", CUSTOMER_ID, "reasons")
_DIGITS = 6  # as the service rounds probabilities


class GeographyCounts(BaseModel):
    scored: int
    predicted_churn: int
    predicted_churn_rate: float | None


class ModelUsed(BaseModel):
    model_config = {"protected_namespaces": ()}

    tag: str
    version: str
    sha256: str
    source: str


class BatchSummary(BaseModel):
    """summary.json: written last, so its presence means the run finished."""

    input: str
    format: str
    files: int
    rows_in: int
    scored: int
    rejected: int
    by_geography: dict[str, GeographyCounts]
    model: ModelUsed
    scored_at: str
    seconds: float
    master: str


@dataclass
class _Block:
    """One task's count of the records of one file block."""

    records: int = 0
    rejected: int = 0
    lines: int = 0  # lines read, blank ones and the header included
    scored: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GEOGRAPHIES, 0))
    churn: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GEOGRAPHIES, 0))


BlockKey = tuple[str, int]  # Spark's name of the file, the block's first byte


class _Blocks(AccumulatorParam[dict[BlockKey, _Block]]):
    def zero(self, value: dict[BlockKey, _Block]) -> dict[BlockKey, _Block]:
        return {}

    def addInPlace(
        self, value1: dict[BlockKey, _Block], value2: dict[BlockKey, _Block]
    ) -> dict[BlockKey, _Block]:
        value1.update(value2)  # a block counted twice (a retried task) counts the same
        return value1


@dataclass(frozen=True)
class _Plan:
    """Everything a Python worker needs, pickled with the function Spark runs."""

    model: ModelRef
    headers: dict[str, Header]
    blocks: Accumulator[dict[BlockKey, _Block]]

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = executor_scorer(self.model)
        seen: dict[BlockKey, _Block] = {}
        for batch in batches:
            for key, piece in _runs(batch):
                block = seen.setdefault(key, _Block())
                checked = self._check(piece, key, block)
                if checked is None:
                    continue
                yield _results(scorer, checked, key, block)
        self.blocks.add(seen)

    def _check(self, piece: pa.RecordBatch, key: BlockKey, block: _Block) -> CustomerBatch | None:
        first = block.records + 1
        if "value" not in piece.schema.names:  # Parquet: typed columns, checked as text
            raw = {
                name: pc.fill_null(pc.cast(piece.column(name), pa.string()), "")
                for name in required_columns(True)
            }
            block.records += piece.num_rows
            return validate_raw(raw, first_row=first)
        header = self.headers[io.file_key(key[0])]
        lines = piece.column("value")
        if key[1] == 0 and block.lines < header.lines:
            # The header, and any blank lines before it, open the file's first block.
            skip = min(header.lines - block.lines, len(lines))
            block.lines += skip
            lines = lines.slice(skip)
        block.lines += len(lines)
        records = lines.filter(pc.invert(pc.equal(pc.utf8_trim_whitespace(lines), "")))
        block.records += len(records)
        return _check_lines(records, first, header) if len(records) else None


def _runs(batch: pa.RecordBatch) -> Iterator[tuple[BlockKey, pa.RecordBatch]]:
    """The batch cut where its rows pass from one file block to the next."""
    files = pc.dictionary_encode(batch.column("source_file")).indices.to_numpy()
    blocks = batch.column("block").to_numpy()
    edges = np.flatnonzero((files[1:] != files[:-1]) | (blocks[1:] != blocks[:-1])) + 1
    starts = [0, *edges.tolist()]
    ends = [*edges.tolist(), batch.num_rows]
    for start, end in zip(starts, ends, strict=True):
        piece = batch.slice(start, end - start)
        yield (str(piece.column("source_file")[0]), int(blocks[start])), piece


def _check_lines(records: pa.Array, first_row: int, header: Header) -> CustomerBatch:
    """A block's CSV records, one per line, split into fields by Arrow, then checked."""
    rows = np.arange(first_row, first_row + len(records))
    # A quote left open runs on into the next line, which here is another record.
    unbalanced = np.asarray(
        pc.bit_wise_and(pc.count_substring(records, '"'), 1).to_numpy(), dtype=bool
    )
    problems = [
        Problem(
            "has a quote that is not closed on its line (a line break inside a cell "
            "cannot be scored in batch)",
            row=int(row),
            allowed="a value for every column in the header",
        )
        for row in rows[unbalanced]
    ]
    rows = rows[~unbalanced]
    ragged: list[Problem] = []

    def refuse(row: Any) -> str:
        number = rows[row.number - 1]
        ragged.append(ragged_record(row.actual_columns, len(header.names), int(number)))
        return "skip"

    text = _joined(records.filter(pa.array(~unbalanced)))
    columns = list(required_columns(True))
    table = pacsv.read_csv(
        pa.BufferReader(text),
        read_options=pacsv.ReadOptions(
            column_names=header.names, use_threads=False, block_size=max(text.size, 1) + 1
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=refuse),
        convert_options=pacsv.ConvertOptions(
            include_columns=columns,
            column_types=dict.fromkeys(columns, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    kept = np.setdiff1d(rows, [p.row for p in ragged], assume_unique=True)
    raw = {name: table.column(name).combine_chunks() for name in columns}
    checked = validate_raw(raw, first_row=first_row, row_numbers=kept)
    checked.row_count = len(records)
    checked.problems = sorted(checked.problems + problems + ragged, key=lambda p: p.row or 0)
    return checked


def _joined(lines: pa.Array) -> pa.Buffer:
    """The lines as one buffer, each ending in a line break, without a Python loop."""
    ended = pc.binary_join_element_wise(lines, "", "\n")
    offsets = np.frombuffer(
        ended.buffers()[1], dtype=np.int32, count=len(ended) + 1, offset=4 * ended.offset
    )
    data = ended.buffers()[2]
    if data is None:
        return pa.py_buffer(b"")
    return data.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _results(scorer: Any, checked: CustomerBatch, key: BlockKey, block: _Block) -> pa.RecordBatch:
    probabilities = scorer.score_frame(checked.features)
    churn = scorer.labels(probabilities)
    geography = np.asarray(checked.features["Geography"].cat.codes)
    for code, name in enumerate(checked.features["Geography"].cat.categories):
        mine = geography == code
        block.scored[name] += int(mine.sum())
        block.churn[name] += int((mine & churn).sum())
    by_row = checked.rejected_rows
    block.rejected += len(by_row)
    scored, rejected = len(probabilities), len(by_row)

    def padded(values: pa.Array) -> pa.Array:
        return pa.concat_arrays([values, pa.nulls(rejected, type=values.type)])

    columns: dict[str, pa.Array] = {
        CUSTOMER_ID: pa.concat_arrays(
            [checked.ids, pa.array([checked.rejected_ids.get(r) for r in by_row], pa.string())]
        ),
        "churn_probability": padded(pa.array(np.round(probabilities, _DIGITS))),
        "prediction": padded(pc.take(_LABELS, pa.array(churn.astype(np.int64)))),
        "risk_band": padded(pc.take(_BANDS, pa.array(scorer.band_codes(probabilities)))),
    }
    for name, _, arrow in _FEATURE_TYPES:
        values = pa.array(checked.features[name])  # a category comes as a dictionary
        columns[name] = padded(values.cast(arrow))

    # Rejected rows are few: their columns are built in Python, the scored rows' nulls not.
    def after_nulls(values: list[Any], kind: pa.DataType) -> pa.Array:
        return pa.concat_arrays([pa.nulls(scored, type=kind), pa.array(values, kind)])

    columns["source_file"] = after_nulls([key[0]] * rejected, pa.string())
    columns["block"] = after_nulls([key[1]] * rejected, pa.int64())
    columns["position"] = after_nulls(list(by_row), pa.int64())
    columns["reasons"] = after_nulls(
        ["; ".join(problem.reason() for problem in problems) for problems in by_row.values()],
        pa.string(),
    )
    return pa.RecordBatch.from_pydict(columns, schema=_RESULTS)


_LABELS = pa.array(LABELS)
_BANDS = pa.array(list(BANDS))


def _spark_schema() -> str:
    kinds = {pa.string(): "string", pa.float64(): "double", pa.int64(): "long"}
    return ", ".join(f"`{f.name}` {kinds[f.type]}" for f in _RESULTS)


def _read(spark: SparkSession, book: io.BookInput) -> DataFrame:
    where = [
        F.col("_metadata.file_path").alias("source_file"),
        F.col("_metadata.file_block_start").alias("block"),
    ]
    if book.format == "parquet":
        frame = spark.read.parquet(book.path)
        by_name = {name.strip(): name for name in frame.columns}
        wanted = [F.col(f"`{by_name[name]}`").alias(name) for name in required_columns(True)]
        return frame.select(*wanted, *where)
    return spark.read.text(book.path).select("value", *where)


def score_book(
    spark: SparkSession,
    input_path: str,
    out: str,
    model: DriverModel,
    *,
    overwrite: bool = False,
) -> BatchSummary:
    """Score INPUT into OUT/scored, OUT/rejected and OUT/summary.json."""
    started = time.monotonic()
    scored_at = datetime.now(UTC).replace(microsecond=0)
    with spark_errors(), quiet_pyspark(), shipping_folder() as folder:
        if io.exists(spark, out) and not overwrite:
            raise InvalidInput(f"{out} exists; choose another --out or add --overwrite.")
        io.delete(spark, f"{out}/summary.json")
        book = io.discover(spark, input_path)
        ship(spark.sparkContext, model.path, model.ref, Path(folder))

        blocks: Accumulator[dict[BlockKey, _Block]] = spark.sparkContext.accumulator({}, _Blocks())
        plan = _Plan(model.ref, book.headers, blocks)
        results = _read(spark, book).mapInArrow(plan, _spark_schema())
        # Scored and rejected rows come out of one pass and go to two places: kept on
        # the executors' disks, not recomputed, and not in their memory. Uncompressed:
        # choosing each cached column's encoding cost a fifth of a task's time.
        with _sql_conf(spark, "spark.sql.inMemoryColumnarStorage.compressed", "false"):
            results.persist(StorageLevel.DISK_ONLY)
        try:
            results.where(F.col("reasons").isNull()).select(
                *[F.col(name) for name in SCORED_COLUMNS[:4]],
                F.lit(model.ref.version).alias("model_version"),
                F.lit(scored_at).alias("scored_at"),
                *FEATURE_NAMES,
            ).write.mode("overwrite").parquet(f"{out}/scored")
            counted = blocks.value
            before = _records_before(counted)
            offsets = spark.createDataFrame(
                [(file, start, count) for (file, start), count in before.items()] or None,
                schema="source_file string, block long, before long",
            )
            results.where(F.col("reasons").isNotNull()).join(
                F.broadcast(offsets), ["source_file", "block"]
            ).select(
                "source_file",
                (F.col("before") + F.col("position")).alias("row"),
                CUSTOMER_ID,
                "reasons",
            ).orderBy("source_file", "row").write.mode("overwrite").parquet(f"{out}/rejected")
        finally:
            results.unpersist()
        summary = _summary(book, counted, model, scored_at, time.monotonic() - started, spark)
        _check_written(spark, out, summary)
        io.write_bytes(
            spark, f"{out}/summary.json", (summary.model_dump_json(indent=2) + "\n").encode()
        )
    return summary


@contextmanager
def _sql_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """A session setting for one step, then back to what the session had."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def _records_before(blocks: dict[BlockKey, _Block]) -> dict[BlockKey, int]:
    """Per block, how many records its file holds before it."""
    before: dict[BlockKey, int] = {}
    running: dict[str, int] = {}
    for file, start in sorted(blocks):
        before[file, start] = running.get(file, 0)
        running[file] = running.get(file, 0) + blocks[file, start].records
    return before


def _summary(
    book: io.BookInput,
    blocks: dict[BlockKey, _Block],
    model: DriverModel,
    scored_at: datetime,
    seconds: float,
    spark: SparkSession,
) -> BatchSummary:
    rows_in = sum(block.records for block in blocks.values())
    if rows_in == 0:
        raise InvalidInput(f"{book.path} has no customer rows.")
    by_geography = {}
    for name in GEOGRAPHIES:
        scored = sum(block.scored[name] for block in blocks.values())
        churn = sum(block.churn[name] for block in blocks.values())
        by_geography[name] = GeographyCounts(
            scored=scored,
            predicted_churn=churn,
            predicted_churn_rate=round(churn / scored, 4) if scored else None,
        )
    ref = model.ref
    return BatchSummary(
        input=book.path,
        format=book.format,
        files=len(book.files),
        rows_in=rows_in,
        scored=sum(counts.scored for counts in by_geography.values()),
        rejected=sum(block.rejected for block in blocks.values()),
        by_geography=by_geography,
        model=ModelUsed(tag=ref.tag, version=ref.version, sha256=ref.sha256, source=ref.source),
        scored_at=scored_at.isoformat(),
        seconds=round(seconds, 3),
        master=spark.sparkContext.master,
    )


def _check_written(spark: SparkSession, out: str, summary: BatchSummary) -> None:
    """rows_in = scored + rejected, by the rows the files hold, not only by the counts."""
    scored = spark.read.parquet(f"{out}/scored").count()
    rejected = spark.read.parquet(f"{out}/rejected").count()
    if (scored, rejected) != (summary.scored, summary.rejected) or (
        summary.rows_in != scored + rejected
    ):
        raise InvalidInput(
            f"The output does not account for every row: {summary.rows_in} rows in, "
            f"{scored} scored and {rejected} rejected written; no summary.json was written."
        )
