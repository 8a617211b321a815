"""`churn batch score`: every row of the book scored or rejected, never collected.

Spark plans and schedules the work; the rows never pass through its JVM. The driver
lists the input with pyarrow (`churn.spark.io`), cuts it into pieces (a CSV into byte
ranges, a Parquet file into its row groups) and packs them into tasks of about equal
size, a whole number of rounds of the cores. Each task, in a Python worker, reads its
pieces with pyarrow, checks each row with the service's `churn.record.csvio.validate_raw`
(a bad row gets the service's reasons), scores the rest with
`churn.scoring.scorer.Scorer`, and writes its own Parquet parts of scored/ and
rejected/. A CSV's lines are split into fields by Arrow's CSV reader, as the service's
are, and a line with too few or too many fields gets the service's reason for it.

A CSV piece owns the lines that start in it, as Hadoop's LineRecordReader splits text
for Spark: one that does not start the file skips to its first line break, and the
last line it owns may run on into the next piece. Rows are numbered per file from 1,
the first record after the header, as the service numbers them. A task does not know
how many records the pieces before its own hold, so it counts the records of each of
its pieces and hands the counts back; the driver adds them up per file and renumbers
the rejected rows of pieces that did not start their file (a second, small job over
those parts only). A Parquet piece knows its first row from the file's footer.

A task attempt writes under DIR/_temporary/JOB/, in a folder named after its task and
attempt; Spark hands the driver exactly one finished attempt per task, whose parts the
driver moves into scored/ and rejected/, so a retried or speculative attempt leaves
neither duplicates nor half-written files. summary.json is written last.

A line break inside a quoted cell (a spreadsheet's cell with Alt+Enter) makes a record
that spans lines, which pieces read in parallel cannot see whole: a task that meets a
line whose quotes do not pair says so, and the driver then scores each such file again,
whole, in one task, with the service's own reader (`csvio.read_customer_batches`), and
keeps that file's results from that task only. Such a file gets the service's answers
and row numbers exactly; one whose quote never closes is refused, as the service refuses it.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel
from pyspark import SparkContext

from churn.record.csvio import (
    CustomerBatch,
    Header,
    ragged_record,
    read_customer_batches,
    required_columns,
    validate_raw,
)
from churn.record.errors import InvalidInput, Problem
from churn.record.outcome import ANSWER_DIGITS, BANDS, LABELS
from churn.record.schema import CUSTOMER_ID, FEATURE_SPECS, GEOGRAPHIES
from churn.spark import io
from churn.spark.model import DriverModel, ModelRef, executor_scorer, ship, shipping_folder
from churn.spark.session import quiet_pyspark, spark_errors

_ARROW_TYPES = {"integer": pa.int64(), "number": pa.float64()}
_FEATURES = [(spec.name, _ARROW_TYPES.get(spec.kind, pa.string())) for spec in FEATURE_SPECS]
SCORED_SCHEMA = pa.schema(
    [
        (CUSTOMER_ID, pa.string()),
        ("churn_probability", pa.float64()),
        ("prediction", pa.string()),
        ("risk_band", pa.string()),
        ("model_version", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
        *_FEATURES,
    ]
)
REJECTED_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("row", pa.int64()),
        (CUSTOMER_ID, pa.string()),
        ("reasons", pa.string()),
    ]
)
SCORED_COLUMNS = tuple(SCORED_SCHEMA.names)
_SCORED_AT = SCORED_SCHEMA.field("scored_at").type
REJECTED_COLUMNS = tuple(REJECTED_SCHEMA.names)
# Columns of few values, stored as dictionaries; the others plain (a dictionary of a
# million distinct values is built, then dropped).
_PLAIN = {CUSTOMER_ID, "churn_probability", "Balance", "EstimatedSalary"}
_DICTIONARY = [name for name in SCORED_SCHEMA.names if name not in _PLAIN]
# A rejected part whose rows still count from the start of their piece says which.
_PIECE = pa.field("piece", pa.int64())
_READ_BYTES = 16 << 20  # of CSV per check and scoring call: about 200,000 records
_PARQUET_ROWS = 1 << 18
_LF, _QUOTE = 0x0A, 0x22
# First bytes of a line that may be blank: ASCII whitespace, or the start of a UTF-8
# character (which may be a Unicode space).
_MAYBE_BLANK = np.zeros(256, dtype=bool)
_MAYBE_BLANK[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, *range(0x80, 0x100)]] = True


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
    """One task's count of the records of one piece of a file."""

    records: int = 0
    rejected: int = 0
    spans_lines: bool = False  # a line whose quotes do not pair: a record may span lines
    scored: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GEOGRAPHIES, 0))
    churn: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GEOGRAPHIES, 0))


BlockKey = tuple[str, int]  # the file's URI, the piece's first byte (CSV) or row (Parquet)


@dataclass(frozen=True)
class _Piece:
    """A CSV's bytes [start, stop), or a Parquet file's rows [start, stop) in one row group."""

    file: str
    start: int
    stop: int
    size: int  # bytes, to size the tasks
    compressed: bool = False  # a compressed CSV is read whole, from its start
    row_group: int = -1  # Parquet: the row group, and the file's row where it starts
    group_start: int = 0


PartKey = tuple[str, int]  # scored or rejected, and the file's place in the book


@dataclass(frozen=True)
class _Done:
    """What a task attempt hands the driver: where its parts are, and its counts."""

    index: int
    folder: str
    blocks: dict[BlockKey, _Block]
    rows: dict[PartKey, int]  # rows in each part, one part per output and file
    numbered: bool  # its rejected rows carry their numbers in their file

    def without(self, files: set[int]) -> _Done:
        """The same attempt, its parts of these files left out."""
        rows = {key: count for key, count in self.rows.items() if key[1] not in files}
        return _Done(self.index, self.folder, self.blocks, rows, self.numbered)


@dataclass(frozen=True)
class _Task:
    """Everything a Python worker needs, pickled with the function Spark runs."""

    model: ModelRef
    book: io.BookInput
    staging: str
    scored_at: datetime

    def __call__(self, index: int, tasks: Iterable[tuple[_Piece, ...]]) -> Iterator[_Done]:
        folder = _attempt_folder(self.staging, f"task-{index:05d}")
        scorer = executor_scorer(self.model)
        blocks: dict[BlockKey, _Block] = {}
        parts = _Parts(folder)
        places = self.book.places()
        pieces = [piece for group in tasks for piece in group]
        # Parquet pieces and a file's first CSV piece know their rows' numbers; a part
        # with any other piece says which piece each row is from, for the driver.
        numbered = self.book.format == "parquet" or all(piece.start == 0 for piece in pieces)
        for piece in pieces:
            block = blocks[piece.file, piece.start] = _Block()
            for checked in self._batches(piece, block):
                scored, rejected = _results(scorer, checked, piece, block, self)
                parts.write("scored", places[piece.file], scored)
                if not numbered:
                    rejected = rejected.append_column(
                        _PIECE, pa.array(np.full(rejected.num_rows, piece.start))
                    )
                parts.write("rejected", places[piece.file], rejected)
        parts.close()
        yield _Done(index, folder, blocks, parts.rows, numbered)

    def _batches(self, piece: _Piece, block: _Block) -> Iterator[CustomerBatch]:
        if self.book.format == "parquet":
            yield from _parquet_batches(piece, self.book.columns[piece.file], block)
            return
        header = self.book.headers[piece.file]
        for text in _owned_lines(piece, header.end):
            checked = _check_text(text, block, header)
            if checked is not None:
                yield checked


def _attempt_folder(staging: str, name: str) -> str:
    """Where this task attempt writes: a folder of its own, under the job's staging."""
    from pyspark import TaskContext

    context = TaskContext.get()
    attempt = context.attemptNumber() if context is not None else 0
    return io.child(staging, f"{name}-attempt-{attempt}")


class _Parts:
    """A task attempt's Parquet parts, one per output and input file, opened when their
    first rows come."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.writers: dict[PartKey, pq.ParquetWriter] = {}
        self.rows: dict[PartKey, int] = {}

    def write(self, name: str, place: int, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        key = (name, place)
        writer = self.writers.get(key)
        if writer is None:
            io.make_dir(self.folder)
            path, system = _path(io.child(self.folder, _part_name(key)))
            writer = self.writers[key] = pq.ParquetWriter(
                path, table.schema, filesystem=system, use_dictionary=_dictionary(table.schema)
            )
        writer.write_table(table)
        self.rows[key] = self.rows.get(key, 0) + table.num_rows

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def _part_name(key: PartKey) -> str:
    name, place = key
    return f"{name}-{place:05d}.parquet"


def _dictionary(schema: pa.Schema) -> list[str] | bool:
    return _DICTIONARY if schema.names == SCORED_SCHEMA.names else True


@dataclass(frozen=True)
class _WholeFile:
    """A CSV whose records may span lines, scored whole with the service's own reader."""

    task: _Task

    def __call__(self, files: Iterable[tuple[int, int]]) -> Iterator[_Done]:
        scorer = executor_scorer(self.task.model)
        for index, place in files:
            file = self.task.book.files[place]
            uri = file.uri
            parts = _Parts(_attempt_folder(self.task.staging, f"whole-{index:05d}"))
            block = _Block()
            piece = _Piece(uri, 0, 0, 0)
            with io.local_copy(uri, compressed=file.compressed) as path:
                try:
                    for checked in read_customer_batches(path, require_id=True):
                        block.records += checked.row_count
                        scored, rejected = _results(scorer, checked, piece, block, self.task)
                        parts.write("scored", place, scored)
                        parts.write("rejected", place, rejected)
                except InvalidInput as error:  # a quote that never closes, as the service says
                    raise InvalidInput(f"{io.short(uri)}: {error.message}") from None
            parts.close()
            yield _Done(index, parts.folder, {(uri, 0): block}, parts.rows, numbered=True)


def _score_whole(
    context: SparkContext,
    task: _Task,
    done: list[_Done],
    blocks: dict[BlockKey, _Block],
    files: list[str],
) -> tuple[list[_Done], dict[BlockKey, _Block]]:
    """The files whose records may span lines, scored again whole (one task each), in
    place of their pieces' results."""
    places = task.book.places()
    replaced = [places[uri] for uri in files]
    whole = [(len(done) + number, place) for number, place in enumerate(replaced)]
    redone = context.parallelize(whole, len(whole)).mapPartitions(_WholeFile(task)).collect()
    kept = {key: block for key, block in blocks.items() if key[0] not in files}
    for result in redone:
        kept |= result.blocks
    return [result.without(set(replaced)) for result in done] + redone, kept


def _owned_lines(piece: _Piece, data_start: int) -> Iterator[memoryview]:
    """The piece's whole lines, a few megabytes at a time: those that start in
    (start, stop], or at 0 for the first piece, and not before the data (the header)."""
    base = piece.start  # the file offset of buffer[0]
    buffer = b""
    skip_first = piece.start > 0
    with io.open_input(piece.file, compressed=piece.compressed) as source:
        if not piece.compressed:
            source.seek(piece.start)
        while True:
            chunk = source.read(_READ_BYTES)
            ended = not chunk
            buffer = buffer + chunk if buffer else chunk
            if skip_first:  # the line under way at `start` is the piece before's
                first_break = buffer.find(b"\n")
                if first_break < 0:
                    if ended:
                        return
                    continue
                base, buffer, skip_first = base + first_break + 1, buffer[first_break + 1 :], False
            if base < data_start:
                drop = min(data_start - base, len(buffer))
                base, buffer = base + drop, buffer[drop:]
                if base < data_start:
                    if ended:
                        return
                    continue
            if base > piece.stop or (ended and not buffer):
                return
            last = len(buffer) if ended else buffer.rfind(b"\n") + 1
            # The first line that starts after `stop` is the next piece's.
            after = buffer.find(b"\n", max(piece.stop - base, 0), last or None)
            done = ended or after >= 0
            if after >= 0:
                last = after + 1
            if last:
                yield memoryview(buffer)[:last]
                base, buffer = base + last, buffer[last:]
            if done:
                return


def _check_text(text: memoryview, block: _Block, header: Header) -> CustomerBatch | None:
    """Whole CSV lines, one record per line: blank lines dropped, each record numbered,
    split into fields by Arrow, checked; a line whose quotes do not pair is rejected."""
    data = np.frombuffer(text, dtype=np.uint8)
    breaks = np.flatnonzero(data == _LF)
    starts = np.concatenate(([0], breaks + 1))
    if starts[-1] == len(data):
        starts = starts[:-1]
    ends = np.append(breaks, len(data))[: len(starts)]
    records = ~_blank(text, data, starts, ends)
    count = int(records.sum())
    first_row = block.records + 1
    block.records += count
    if count == 0:
        return None
    rows = np.zeros(len(starts), dtype=np.int64)
    rows[records] = np.arange(first_row, first_row + count)
    unbalanced = np.zeros(len(starts), dtype=bool)
    if _QUOTE in data:
        quotes = np.flatnonzero(data == _QUOTE)
        pairs = np.searchsorted(quotes, ends) - np.searchsorted(quotes, starts)
        unbalanced = records & (pairs % 2 == 1)
        block.spans_lines |= bool(unbalanced.any())
    # A quote left open would run on into the next line, which here is another record.
    # These counts stand only until the driver scores the file again whole
    # (`_score_whole`), which replaces all of this file's results.
    problems = [
        Problem(
            "has a quote that is not closed on its line",
            row=int(row),
            allowed="a value for every column in the header",
        )
        for row in rows[unbalanced]
    ]
    kept = records & ~unbalanced
    kept_rows = rows[kept]
    source = pa.py_buffer(text)
    if not kept.all():
        source = _lines(source, starts, kept)
    ragged: list[Problem] = []

    def refuse(row: Any) -> str:
        number = kept_rows[row.number - 1]
        ragged.append(ragged_record(row.actual_columns, len(header.names), int(number)))
        return "skip"

    columns = list(required_columns(True))
    if not kept.any():  # Arrow refuses an empty CSV
        empty = pa.array([], pa.string())
        checked = validate_raw(dict.fromkeys(columns, empty), first_row=first_row)
        checked.row_count = count
        checked.problems = problems
        return checked
    table = pacsv.read_csv(
        pa.BufferReader(source),
        read_options=pacsv.ReadOptions(
            column_names=header.names, use_threads=False, block_size=max(source.size, 1) + 1
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=refuse),
        convert_options=pacsv.ConvertOptions(
            include_columns=columns,
            column_types=dict.fromkeys(columns, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    good = np.setdiff1d(kept_rows, [p.row for p in ragged], assume_unique=True)
    raw = {name: table.column(name).combine_chunks() for name in columns}
    checked = validate_raw(raw, first_row=first_row, row_numbers=good)
    checked.row_count = count
    checked.problems = sorted(checked.problems + problems + ragged, key=lambda p: p.row or 0)
    return checked


def _blank(text: memoryview, data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines of only whitespace (or nothing), which are no records."""
    empty = ends == starts
    first = data[np.minimum(starts, max(len(data) - 1, 0))] if len(data) else starts
    blank: np.ndarray = empty.copy()
    for line in np.flatnonzero(~empty & _MAYBE_BLANK[first]).tolist():
        content = bytes(text[starts[line] : ends[line]])
        blank[line] = not content.decode("utf-8", errors="replace").strip()
    return blank


def _lines(text: pa.Buffer, starts: np.ndarray, kept: np.ndarray) -> pa.Buffer:
    """The kept lines, line breaks and all, as one buffer, without a Python loop."""
    offsets = np.append(starts, text.size).astype(np.int64)
    lines = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(starts), [None, pa.py_buffer(offsets), text]
    )
    chosen = lines.filter(pa.array(kept))
    bounds = np.frombuffer(chosen.buffers()[1], dtype=np.int64, count=len(chosen) + 1)
    data = chosen.buffers()[2]
    if data is None or len(chosen) == 0:
        return pa.py_buffer(b"")
    return data.slice(int(bounds[0]), int(bounds[-1] - bounds[0]))


def _parquet_batches(
    piece: _Piece, names: tuple[str, ...], block: _Block
) -> Iterator[CustomerBatch]:
    """A piece of a row group, its typed columns checked as the text they would be."""
    group = io.parquet_file(piece.file).read_row_group(piece.row_group, columns=list(names))
    rows = group.slice(piece.start - piece.group_start, piece.stop - piece.start)
    for offset in range(0, rows.num_rows, _PARQUET_ROWS):
        batch = rows.slice(offset, _PARQUET_ROWS)
        raw = {
            name: pc.fill_null(pc.cast(batch.column(actual), pa.string()), "").combine_chunks()
            for name, actual in zip(required_columns(True), names, strict=True)
        }
        first = piece.start + block.records + 1
        block.records += batch.num_rows
        yield validate_raw(raw, first_row=first)


def _results(
    scorer: Any, checked: CustomerBatch, piece: _Piece, block: _Block, task: _Task
) -> tuple[pa.Table, pa.Table]:
    """The scored rows and the rejected ones, as their parts hold them."""
    probabilities = scorer.score_frame(checked.features)
    churn = scorer.labels(probabilities)
    geography = np.asarray(checked.features["Geography"].cat.codes)
    for code, name in enumerate(checked.features["Geography"].cat.categories):
        mine = geography == code
        block.scored[name] += int(mine.sum())
        block.churn[name] += int((mine & churn).sum())
    count = len(probabilities)
    columns: dict[str, pa.Array] = {
        CUSTOMER_ID: checked.ids,
        "churn_probability": pa.array(np.round(probabilities, ANSWER_DIGITS)),
        "prediction": pc.take(_LABELS, pa.array(churn.astype(np.int64))),
        "risk_band": pc.take(_BANDS, pa.array(scorer.band_codes(probabilities))),
        "model_version": pa.repeat(pa.scalar(task.model.version), count),
        "scored_at": pa.repeat(pa.scalar(task.scored_at, _SCORED_AT), count),
    }
    for name, arrow in _FEATURES:
        columns[name] = pa.array(checked.features[name]).cast(arrow)  # a category: dictionary
    scored = pa.Table.from_pydict(columns, schema=SCORED_SCHEMA)

    by_row = checked.rejected_reasons()
    block.rejected += len(by_row)
    # Parquet pieces and a file's first CSV piece know their first row; other CSV pieces
    # count from 1 here, and the driver adds the records before them.
    before = piece.start if task.book.format == "parquet" else 0
    rejected = pa.Table.from_pydict(
        {
            "source_file": pa.repeat(pa.scalar(piece.file), len(by_row)),
            "row": pa.array([before + row for row in by_row], pa.int64()),
            CUSTOMER_ID: pa.array([checked.rejected_ids.get(r) for r in by_row], pa.string()),
            "reasons": pa.array(list(by_row.values()), pa.string()),
        },
        schema=REJECTED_SCHEMA,
    )
    return scored, rejected


_LABELS = pa.array(LABELS)
_BANDS = pa.array(list(BANDS))


@dataclass(frozen=True)
class _Renumber:
    """Adds the records before each piece to the rows of one staged rejected part."""

    before: dict[BlockKey, int]

    def __call__(self, move: tuple[str, str]) -> None:
        staged, target = move
        path, system = _path(staged)
        table = pq.read_table(path, filesystem=system)
        files = table.column("source_file").to_pylist()
        pieces = table.column("piece").to_numpy()
        offsets = np.array(
            [self.before[file, int(start)] for file, start in zip(files, pieces, strict=True)],
            dtype=np.int64,
        )
        rows = pc.add(table.column("row"), pa.array(offsets))
        table = table.drop_columns(["piece"]).set_column(1, "row", rows)
        path, system = _path(target)
        pq.write_table(table.cast(REJECTED_SCHEMA), path, filesystem=system)


def _path(uri: str) -> tuple[str, Any]:
    system, path = io.locate(uri)
    return path, system


def score_book(
    context: SparkContext,
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
        out = io.absolute(out)  # and a scheme pyarrow cannot open is refused before any work
        if io.exists(out) and not overwrite:
            raise InvalidInput(f"{out} exists; choose another --out or add --overwrite.")
        io.delete(io.child(out, "summary.json"))
        io.delete(io.child(out, "_temporary"))
        book = io.discover(input_path)
        ship(context, model, Path(folder))
        tasks = _plan(context, book)
        staging = io.child(out, "_temporary", uuid.uuid4().hex)
        task = _Task(model.ref, book, staging, scored_at)
        try:
            done = context.parallelize(tasks, len(tasks)).mapPartitionsWithIndex(task).collect()
            blocks = {key: block for result in done for key, block in result.blocks.items()}
            spanning = sorted({file for (file, _), block in blocks.items() if block.spans_lines})
            if spanning:
                done, blocks = _score_whole(context, task, done, blocks, spanning)
            summary = _summary(book, blocks, model, scored_at, context)
            _commit(context, out, staging, done, _records_before(blocks))
        finally:
            io.delete(io.child(out, "_temporary"))  # attempts not chosen, or all of a failed run
        _check_written(out, summary)
        summary.seconds = round(time.monotonic() - started, 3)
        io.write_bytes(
            io.child(out, "summary.json"), (summary.model_dump_json(indent=2) + "\n").encode()
        )
    return summary


def _plan(context: SparkContext, book: io.BookInput) -> list[tuple[_Piece, ...]]:
    """The book in pieces, packed into tasks of about equal size (Spark's settings
    spark.sql.files.maxPartitionBytes and openCostInBytes size them, as Spark's own
    file sources do: from --conf, or a thread's local property)."""
    largest = _bytes_setting(context, "spark.sql.files.maxPartitionBytes", "128m")
    open_cost = _bytes_setting(context, "spark.sql.files.openCostInBytes", "4m")
    total = sum(file.size + open_cost for file in book.files)
    target = io.task_bytes(total, largest, open_cost, context.defaultParallelism)
    pieces = (
        _parquet_pieces(book, target) if book.format == "parquet" else _csv_pieces(book, target)
    )
    tasks: list[tuple[_Piece, ...]] = []
    current: list[_Piece] = []
    size = 0
    for piece in pieces:
        cost = piece.size + (open_cost if not current or current[-1].file != piece.file else 0)
        # A piece goes to the task its middle falls in, as Spark gives a row group to
        # the split that holds its middle.
        if current and size + cost / 2 > target:
            tasks.append(tuple(current))
            current, size = [], 0
            cost = piece.size + open_cost
        current.append(piece)
        size += cost
    tasks.append(tuple(current))
    return tasks


_BYTE_UNITS = {"": 0, "b": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50}
_BYTE_STRING = re.compile(r"\s*(\d+)\s*([kmgtp]?)b?\s*", re.IGNORECASE)


def _bytes_setting(context: SparkContext, key: str, default: str) -> int:
    """A size setting as Spark reads one: `4096`, `4k`, `128m`, `1g` (binary units)."""
    text = context.getLocalProperty(key) or context.getConf().get(key) or default
    found = _BYTE_STRING.fullmatch(text)
    if found is None:
        raise InvalidInput(f"{key}={text!r} is not a size such as 4096, 64m or 1g.")
    return int(found.group(1)) << _BYTE_UNITS[found.group(2).lower()]


def _csv_pieces(book: io.BookInput, target: int) -> list[_Piece]:
    pieces = []
    for file in book.files:
        if file.compressed:  # read from its start by one task
            pieces.append(_Piece(file.uri, 0, 1 << 62, file.size, compressed=True))
            continue
        count = max(1, math.ceil(file.size / target))
        step = math.ceil(file.size / count) if file.size else 1
        for start in range(0, max(file.size, 1), step):
            stop = min(start + step, file.size)
            pieces.append(_Piece(file.uri, start, stop, stop - start))
    return pieces


def _parquet_pieces(book: io.BookInput, target: int) -> list[_Piece]:
    """Row groups; one larger than a task's share is read by several, each scoring a part."""
    pieces = []
    for file in book.files:
        metadata = io.parquet_file(file.uri).metadata
        first = 0
        for group in range(metadata.num_row_groups):
            info = metadata.row_group(group)
            size = sum(info.column(c).total_compressed_size for c in range(info.num_columns))
            count = max(1, min(math.ceil(size / target), info.num_rows))
            step = math.ceil(info.num_rows / count) if info.num_rows else 1
            for start in range(0, info.num_rows, step):
                stop = min(start + step, info.num_rows)
                part = size * (stop - start) // info.num_rows
                pieces.append(
                    _Piece(file.uri, first + start, first + stop, part, row_group=group,
                           group_start=first)
                )  # fmt: skip
            first += info.num_rows
    return pieces


def _commit(
    context: SparkContext,
    out: str,
    staging: str,
    done: list[_Done],
    before: dict[BlockKey, int],
) -> None:
    """The chosen attempts' parts into scored/ and rejected/, renumbered where needed."""
    for name in ("scored", "rejected"):
        io.delete(io.child(out, name))
        io.make_dir(io.child(out, name))
    renumber: list[tuple[str, str]] = []
    written = {"scored": 0, "rejected": 0}
    for result in sorted(done, key=lambda result: result.index):
        for (name, place), rows in sorted(result.rows.items()):
            written[name] += rows
            staged = io.child(result.folder, _part_name((name, place)))
            part = f"part-{result.index:05d}-{place:05d}.parquet"
            if name == "rejected" and not result.numbered:
                renumber.append((staged, io.child(staging, f"renumbered-{part}")))
            else:
                io.move(staged, io.child(out, name, part))
    if renumber:
        context.parallelize(renumber, len(renumber)).foreach(_Renumber(before))
        for _, staged in renumber:
            part = staged.rsplit("/", 1)[-1].removeprefix("renumbered-")
            io.move(staged, io.child(out, "rejected", part))
    for name, schema in (("scored", SCORED_SCHEMA), ("rejected", REJECTED_SCHEMA)):
        if not written[name]:
            # No rows: one empty part, so that the folder still reads as a table.
            path, system = _path(io.child(out, name, "part-00000.parquet"))
            pq.write_table(schema.empty_table(), path, filesystem=system)
        io.write_bytes(io.child(out, name, "_SUCCESS"), b"")


def _records_before(blocks: dict[BlockKey, _Block]) -> dict[BlockKey, int]:
    """Per piece, how many records its file holds before it."""
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
    context: SparkContext,
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
        seconds=0.0,  # set once the output is written
        master=context.master,
    )


def _check_written(out: str, summary: BatchSummary) -> None:
    """rows_in = scored + rejected, by the rows the files hold, not only by the counts."""
    scored = io.parquet_rows(io.child(out, "scored"))
    rejected = io.parquet_rows(io.child(out, "rejected"))
    if (scored, rejected) != (summary.scored, summary.rejected) or (
        summary.rows_in != scored + rejected
    ):
        raise InvalidInput(
            f"The output does not account for every row: {summary.rows_in} rows in, "
            f"{scored} scored and {rejected} rejected written; no summary.json was written."
        )
