"""`churn batch score` on real Spark: counts, the service's reasons and answers, failures."""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyspark import SparkContext

from churn.clients.client import ChurnClient
from churn.record.errors import BadRequest, InvalidInput, ModelIntegrityError
from churn.scoring.files import score_file
from churn.scoring.predictor import ChurnPredictor
from churn.spark.job import (
    REJECTED_COLUMNS,
    SCORED_COLUMNS,
    SCORED_SCHEMA,
    BatchSummary,
    _bytes_setting,
    _commit,
    _Done,
    score_book,
)
from churn.spark.model import DriverModel
from tests.conftest import LiveService
from tests.factories import BANK_COLUMNS, bank_row
from tests.spark.conftest import GOOD_ROWS, REJECTED_ROWS, ROWS_IN


def _rows(directory: Path, part: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(directory / part).to_pylist()
    return rows


def test_every_row_is_scored_or_rejected(scored: tuple[Path, BatchSummary]) -> None:
    out, summary = scored
    assert (summary.rows_in, summary.scored, summary.rejected) == (
        ROWS_IN,
        ROWS_IN - len(REJECTED_ROWS),
        len(REJECTED_ROWS),
    )
    assert json.loads((out / "summary.json").read_text()) == summary.model_dump(mode="json")
    by_geography = summary.by_geography
    assert sum(counts.scored for counts in by_geography.values()) == summary.scored
    for counts in by_geography.values():
        assert counts.predicted_churn_rate == round(counts.predicted_churn / counts.scored, 4)
    scored_rows, rejected = _rows(out, "scored"), _rows(out, "rejected")
    assert len(scored_rows) == summary.scored
    assert len(rejected) == summary.rejected
    assert tuple(pq.read_schema(out / "scored" / _part(out / "scored")).names) == SCORED_COLUMNS
    assert tuple(pq.read_schema(out / "rejected" / _part(out / "rejected")).names) == (
        REJECTED_COLUMNS
    )
    assert {row["model_version"] for row in scored_rows} == {summary.model.version}
    assert len({row["scored_at"] for row in scored_rows}) == 1


def _part(folder: Path) -> str:
    return next(p.name for p in folder.iterdir() if p.suffix == ".parquet")


def test_rejected_rows_get_the_file_scorers_reasons(
    scored: tuple[Path, BatchSummary], book: Path, bundled_model: DriverModel, tmp_path: Path
) -> None:
    """The service's own file scorer, in this process, on the same file."""
    out, _ = scored
    predictor = ChurnPredictor(bundled_model.loaded)
    score_file(predictor, book, tmp_path / "service.csv")
    service = pacsv.read_csv(
        tmp_path / "service.csv",
        convert_options=pacsv.ConvertOptions(column_types={"CustomerId": pa.string()}),
    ).to_pylist()
    expected = {r["row"]: r["errors"] for r in service if r["status"] == "rejected"}
    rejected = _rows(out, "rejected")
    assert {r["row"]: r["reasons"] for r in rejected} == expected
    assert set(expected) == REJECTED_ROWS
    assert {r["source_file"] for r in rejected} == {book.as_uri().replace("file:///", "file:/")}
    assert {r["row"]: r["CustomerId"] for r in rejected}[41] == "900000041"
    assert {r["row"]: r["CustomerId"] for r in rejected}[45] is None


@pytest.mark.slow
def test_same_answers_as_the_service(
    scored: tuple[Path, BatchSummary], book: Path, live_service: LiveService, tmp_path: Path
) -> None:
    """The running service's /v2/predict-file, over HTTP, for the same file."""
    out, _ = scored
    with ChurnClient(live_service.url) as client:
        client.predict_file(book, tmp_path / "service.json", output_format="json")
    answer = json.loads((tmp_path / "service.json").read_text())
    service = {
        str(p["CustomerId"]).lstrip("'"): (p["churn_probability"], p["prediction"], p["risk_band"])
        for p in answer["predictions"]
    }
    batch = {
        r["CustomerId"]: (r["churn_probability"], r["prediction"], r["risk_band"])
        for r in _rows(out, "scored")
    }
    assert len(batch) == GOOD_ROWS + 1
    assert batch == service
    assert {r["row"]: r["errors"] for r in answer["rejected"]} == {
        r["row"]: r["reasons"] for r in _rows(out, "rejected")
    }


def test_parquet_scores_as_the_csv_does(
    spark: SparkContext,
    book: Path,
    scored: tuple[Path, BatchSummary],
    bundled_model: DriverModel,
    tmp_path: Path,
) -> None:
    """Typed Parquet columns, the bank layout's extra columns among them, and a null."""
    head = book.read_text(encoding="utf-8").splitlines(keepends=True)[: GOOD_ROWS + 1]
    good = pacsv.read_csv(pa.py_buffer("".join(head).encode()))
    with_null = pa.table({name: good.column(name).slice(0, 1) for name in good.column_names})
    with_null = with_null.set_column(
        with_null.column_names.index("Age"), "Age", pa.array([None], pa.int64())
    )
    folder = tmp_path / "book"
    folder.mkdir()
    pq.write_table(good, folder / "part-0.parquet")
    pq.write_table(with_null.cast(good.schema), folder / "part-1.parquet")
    summary = score_book(spark, str(folder), str(tmp_path / "out"), bundled_model)
    assert (summary.format, summary.rows_in, summary.rejected) == ("parquet", GOOD_ROWS + 1, 1)
    [rejected] = _rows(tmp_path / "out", "rejected")
    assert rejected["row"] == 1
    assert rejected["source_file"].endswith("part-1.parquet")
    assert rejected["reasons"] == "Age: is empty (allowed: an integer from 18 to 100)"
    from_csv = {r["CustomerId"]: r["churn_probability"] for r in _rows(scored[0], "scored")}
    from_parquet = {
        r["CustomerId"]: r["churn_probability"] for r in _rows(tmp_path / "out", "scored")
    }
    assert from_parquet == {key: from_csv[key] for key in from_parquet}
    assert len(from_parquet) == GOOD_ROWS


def test_rows_are_numbered_per_file_across_blocks(
    spark: SparkContext,
    bundled_model: DriverModel,
    write_book: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """Files split into many blocks read by different tasks: rows still count per file."""
    lines = [BANK_COLUMNS]
    for row in range(1, 301):
        lines.append(bank_row(row, row, Age=17 if row % 37 == 0 else 40))
        if row % 50 == 0:
            lines.append("")
    first = write_book("\n".join(lines) + "\n", "a.csv")
    write_book("\n\n" + "\n".join(lines[:60]) + "\n", "b.csv")  # 58 records
    spark.setLocalProperty("spark.sql.files.maxPartitionBytes", "4096")
    spark.setLocalProperty("spark.sql.files.openCostInBytes", "0")
    try:
        summary = score_book(spark, str(tmp_path), str(tmp_path / "out"), bundled_model)
    finally:
        spark.setLocalProperty("spark.sql.files.maxPartitionBytes", None)  # type: ignore[arg-type]
        spark.setLocalProperty("spark.sql.files.openCostInBytes", None)  # type: ignore[arg-type]
    assert summary.files == 2
    assert summary.rows_in == 300 + 58
    rejected = sorted(
        (r["source_file"][-5:], r["row"]) for r in _rows(tmp_path / "out", "rejected")
    )
    expected = [("a.csv", row) for row in range(37, 301, 37)]
    expected += [("b.csv", row) for row in range(37, 60, 37)]
    assert rejected == sorted(expected)
    assert first.stat().st_size > 4 * 4096  # so the file did span several blocks


def test_a_missing_column_is_named(
    spark: SparkContext,
    bundled_model: DriverModel,
    write_book: Callable[..., Path],
    tmp_path: Path,
) -> None:
    text = BANK_COLUMNS.replace(",Age", "") + "\n" + bank_row() + "\n"
    path = write_book(text)
    with pytest.raises(InvalidInput) as caught:
        score_book(spark, str(path), str(tmp_path / "out"), bundled_model)
    assert caught.value.message == f"{path} is missing required columns: Age."
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "Path does not exist: file:"),
        (b"\x00\x01\x02binary", "book.csv: The file is not a text CSV"),
        (b"", "holds no files"),
    ],
    ids=["missing", "binary", "empty folder"],
)
def test_unreadable_input_is_one_line(
    spark: SparkContext,
    bundled_model: DriverModel,
    tmp_path: Path,
    content: bytes | None,
    expected: str,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    target = folder if content == b"" else folder / "book.csv"
    if content:
        target.write_bytes(content)
    with pytest.raises(BadRequest) as caught:
        score_book(spark, str(target), str(tmp_path / "out"), bundled_model)
    assert expected in caught.value.message
    assert "\n" not in caught.value.message


def test_an_executor_refuses_a_model_that_fails_its_checksum(
    spark: SparkContext, book: Path, bundled_model: DriverModel, tmp_path: Path
) -> None:
    """The driver's copy is fine; the digest the executors are told to expect is not its."""
    wrong = dataclasses.replace(bundled_model.ref, booster_sha256="0" * 64)
    tampered = dataclasses.replace(bundled_model, ref=wrong)
    with pytest.raises(ModelIntegrityError) as caught:
        score_book(spark, str(book), str(tmp_path / "out"), tampered)
    message = caught.value.message
    assert message.startswith("On an executor: Refusing to load churn-model-")
    assert f"expected {'0' * 64}" in message
    assert "\n" not in message
    assert not (tmp_path / "out" / "summary.json").exists()


def test_an_existing_output_is_kept_unless_told(
    spark: SparkContext, scored: tuple[Path, BatchSummary], book: Path, bundled_model: DriverModel
) -> None:
    out, _ = scored
    with pytest.raises(InvalidInput, match="exists"):
        score_book(spark, str(book), str(out), bundled_model)
    copy = out.parent / "again"
    shutil.copytree(out, copy)
    again = score_book(spark, str(book), str(copy), bundled_model, overwrite=True)
    assert again.rows_in == ROWS_IN


def test_hadoop_connector_schemes_are_refused_in_one_line(
    spark: SparkContext, bundled_model: DriverModel, tmp_path: Path
) -> None:
    with pytest.raises(BadRequest) as caught:
        score_book(spark, "s3a://bank/book.csv", str(tmp_path / "out"), bundled_model)
    message = caught.value.message
    assert "write s3://bank/book.csv for it" in message
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_compressed_and_crlf_files_are_numbered_as_the_plain_one(
    spark: SparkContext, book: Path, bundled_model: DriverModel, tmp_path: Path
) -> None:
    """A gzip CSV, read whole by one task; a CRLF one without a last line break, cut into
    pieces of a few hundred bytes, each line owned by the piece it starts in."""
    text = book.read_bytes()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv.gz").write_bytes(gzip.compress(text))
    (folder / "b.csv").write_bytes(text.replace(b"\n", b"\r\n").rstrip(b"\r\n"))
    spark.setLocalProperty("spark.sql.files.maxPartitionBytes", "700")
    try:
        summary = score_book(spark, str(folder), str(tmp_path / "out"), bundled_model)
    finally:
        spark.setLocalProperty("spark.sql.files.maxPartitionBytes", None)  # type: ignore[arg-type]
    assert (summary.files, summary.rows_in) == (2, 2 * ROWS_IN)
    assert summary.rejected == 2 * len(REJECTED_ROWS)
    rows: dict[str, set[int]] = {}
    for rejected in _rows(tmp_path / "out", "rejected"):
        rows.setdefault(rejected["source_file"].rsplit("/", 1)[-1], set()).add(rejected["row"])
    assert rows == {"a.csv.gz": REJECTED_ROWS, "b.csv": REJECTED_ROWS}
    assert not (tmp_path / "out" / "_temporary").exists()


def test_only_the_attempt_spark_chose_is_committed(spark: SparkContext, tmp_path: Path) -> None:
    """A retried or speculative task leaves another attempt's folder behind; the driver
    moves the parts of the one attempt Spark returned, whole, and nothing else."""
    out = tmp_path / "out"
    staging = out / "_temporary" / "job"
    for attempt, ids in ((0, ["1", "2"]), (1, ["1", "2", "3"])):
        folder = staging / f"task-00000-attempt-{attempt}"
        folder.mkdir(parents=True)
        table = SCORED_SCHEMA.empty_table().to_pydict()
        table = {name: [None] * len(ids) for name in table} | {"CustomerId": ids}
        pq.write_table(pa.table(table, schema=SCORED_SCHEMA), folder / "scored-00000.parquet")
    chosen = _Done(0, str(staging / "task-00000-attempt-1"), {}, {("scored", 0): 3}, True)
    _commit(spark, str(out), str(staging), [chosen], {})
    assert sorted(r["CustomerId"] for r in _rows(out, "scored")) == ["1", "2", "3"]
    assert _rows(out, "rejected") == []
    assert (staging / "task-00000-attempt-0" / "scored-00000.parquet").exists()  # left to cleanup


def test_a_task_with_a_files_last_piece_and_the_next_files_first(
    spark: SparkContext,
    bundled_model: DriverModel,
    write_book: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """Two cores, no cost per file: a.csv in two pieces, the second one packed with b.csv
    into one task, rejected rows in both; each keeps its number in its own file."""
    rows = [BANK_COLUMNS, *(bank_row(r, r, Age=17 if r % 7 == 0 else 40) for r in range(1, 31))]
    write_book("\n".join(rows) + "\n", "a.csv")
    write_book("\n".join(rows[:4]) + "\n" + bank_row(4, 4, Geography="Mars") + "\n", "b.csv")
    spark.setLocalProperty("spark.sql.files.openCostInBytes", "0")
    try:
        summary = score_book(spark, str(tmp_path), str(tmp_path / "out"), bundled_model)
    finally:
        spark.setLocalProperty("spark.sql.files.openCostInBytes", None)  # type: ignore[arg-type]
    assert summary.rows_in == 30 + 4
    rejected = sorted(
        (r["source_file"][-5:], r["row"]) for r in _rows(tmp_path / "out", "rejected")
    )
    assert rejected == [("a.csv", row) for row in range(7, 31, 7)] + [("b.csv", 4)]


def _service_answers(
    bundled_model: DriverModel, path: Path, folder: Path
) -> tuple[dict[str, float], dict[int, str]]:
    """The service's file scorer on one file: probability by id, reasons by row."""
    score_file(ChurnPredictor(bundled_model.loaded), path, folder / f"{path.name}.results.csv")
    answers = pacsv.read_csv(
        folder / f"{path.name}.results.csv",
        convert_options=pacsv.ConvertOptions(column_types={"CustomerId": pa.string()}),
    ).to_pylist()
    scored = {r["CustomerId"]: r["churn_probability"] for r in answers if r["status"] == "scored"}
    return scored, {r["row"]: r["errors"] for r in answers if r["status"] == "rejected"}


def test_records_that_span_lines_get_the_services_answers_and_rows(
    spark: SparkContext,
    bundled_model: DriverModel,
    write_book: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """A spreadsheet's cell with a line break (Alt+Enter), a stray quote inside a cell,
    a rejected row after them: cut into small pieces, a.csv (and its gzip copy) is
    scored again whole with the service's reader; b.csv keeps its pieces' results."""
    rows = [bank_row(r, 1000 + r, Age=17 if r in (12, 27) else 40) for r in range(1, 31)]
    rows[4] = rows[4].replace("Hargrave", '"Mac\nDonald, of\r\nSkye"')
    rows[8] = rows[8].replace("Hargrave", 'O"Brien')
    a = write_book(BANK_COLUMNS + "\n" + "\n".join(rows) + "\n", "a.csv")
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(a.read_bytes()))
    plain = [bank_row(r, 2000 + r, Geography="Mars" if r == 3 else "Spain") for r in range(1, 6)]
    b = write_book(BANK_COLUMNS + "\n" + "\n".join(plain) + "\n", "b.csv")
    out = tmp_path / "out"
    spark.setLocalProperty("spark.sql.files.maxPartitionBytes", "700")
    try:
        summary = score_book(spark, str(tmp_path), str(out), bundled_model)
    finally:
        spark.setLocalProperty("spark.sql.files.maxPartitionBytes", None)  # type: ignore[arg-type]
    assert (summary.files, summary.rows_in) == (3, 30 + 30 + 5)
    scored = {r["CustomerId"]: r["churn_probability"] for r in _rows(out, "scored")}
    rejected: dict[str, dict[int, str]] = {}
    for row in _rows(out, "rejected"):
        rejected.setdefault(row["source_file"].rsplit("/", 1)[-1], {})[row["row"]] = row["reasons"]
    service_a, reasons_a = _service_answers(bundled_model, a, tmp_path)
    service_b, reasons_b = _service_answers(bundled_model, b, tmp_path)
    assert set(reasons_a) == {12, 27}
    assert rejected == {"a.csv": reasons_a, "a.csv.gz": reasons_a, "b.csv": reasons_b}
    assert scored == service_a | service_b
    assert summary.scored == 2 * len(service_a) + len(service_b)
    assert not (out / "_temporary").exists()


def test_a_quote_that_never_closes_is_refused_as_the_service_refuses_it(
    spark: SparkContext,
    bundled_model: DriverModel,
    write_book: Callable[..., Path],
    tmp_path: Path,
) -> None:
    rows = [bank_row(r, r) for r in range(1, 6)]
    rows[2] = rows[2].replace("Hargrave", '"Hargrave')
    path = write_book(BANK_COLUMNS + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(InvalidInput) as caught:
        score_book(spark, str(path), str(tmp_path / "out"), bundled_model)
    message = caught.value.message
    assert message.startswith(f"{path}: A quote opens in Surname on row 3")
    assert "Nothing was scored" in message
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096), ("4k", 4096), ("64MB", 64 << 20), ("1g", 1 << 30), (" 2 m ", 2 << 20)],
)
def test_sizes_are_read_as_spark_reads_them(spark: SparkContext, text: str, expected: int) -> None:
    key = "spark.sql.files.maxPartitionBytes"
    spark.setLocalProperty(key, text)
    try:
        assert _bytes_setting(spark, key, "128m") == expected
    finally:
        spark.setLocalProperty(key, None)  # type: ignore[arg-type]
    assert _bytes_setting(spark, key, "128m") == 128 << 20


def test_a_size_spark_would_not_read_is_refused(spark: SparkContext) -> None:
    key = "spark.sql.files.openCostInBytes"
    spark.setLocalProperty(key, "1.5m")
    try:
        with pytest.raises(InvalidInput, match="is not a size such as 4096"):
            _bytes_setting(spark, key, "4m")
    finally:
        spark.setLocalProperty(key, None)  # type: ignore[arg-type]
