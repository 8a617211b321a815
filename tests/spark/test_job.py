"""`churn batch score` on real Spark: counts, the service's reasons and answers, tables,
reruns, and the quote case that crashed the old job."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from churn.record.errors import BadRequest, InvalidInput, ModelIntegrityError
from churn.record.outcome import CHURN
from churn.record.schema import GEOGRAPHIES
from churn.scoring.predictor import ChurnPredictor
from churn.spark.arrow_pass import RESULT_DDL, RESULT_SCHEMA
from churn.spark.book import Source
from churn.spark.job import score_book
from churn.spark.model import BatchModel
from churn.spark.output import Sink
from churn.spark.summary import BatchSummary, read_summary
from tests.factories import BANK_COLUMNS, bank_row
from tests.spark.conftest import (
    GOOD_ROWS,
    REJECTED_ROWS,
    ROWS_IN,
    same_as_service,
    service_answers,
)


def _rows(folder: Path, run: str = "r1", status: str | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(folder / f"run={run}").to_pylist()
    return [row for row in rows if status is None or row["status"] == status]


def test_every_row_is_scored_or_rejected(scored: tuple[Path, BatchSummary]) -> None:
    out, summary = scored
    assert (summary.rows_in, summary.scored, summary.rejected) == (
        ROWS_IN, ROWS_IN - len(REJECTED_ROWS), len(REJECTED_ROWS),
    )  # fmt: skip
    rows = _rows(out)
    assert len(rows) == summary.rows_in
    assert len([r for r in rows if r["status"] == "rejected"]) == summary.rejected
    assert pq.read_schema(next((out / "run=r1").glob("*.parquet"))).names == RESULT_SCHEMA.names
    assert {r["job_id"] for r in rows} == {summary.job_id}
    assert {r["model_version"] for r in rows} == {summary.model.version}
    [line] = list((out / "_summary" / "run=r1").glob("*.json"))
    assert BatchSummary.model_validate_json(json.loads(line.read_text())["summary"]) == summary


def test_each_country_is_counted_as_the_service_answers(
    scored: tuple[Path, BatchSummary],
    book: Path,
    service_predictor: ChurnPredictor,
    tmp_path: Path,
) -> None:
    """The summary's figures per Geography, against the service's answers for the same
    file and each customer's country as the book gives it."""
    _, summary = scored
    with book.open(encoding="utf-8", newline="") as handle:
        country = {row["CustomerId"]: row["Geography"] for row in csv.DictReader(handle)}
    expected = {name: [0, 0] for name in GEOGRAPHIES}
    for row in service_answers(service_predictor, book, tmp_path):
        if row["status"] == "scored":
            counts = expected[country[row["CustomerId"]]]
            counts[0] += 1
            counts[1] += row["prediction"] == CHURN
    counted = summary.by_geography
    assert {name: [c.scored, c.predicted_churn] for name, c in counted.items()} == expected
    assert 0 < sum(churn for _, churn in expected.values()) < summary.scored  # both labels
    for name, (scored_count, churn) in expected.items():
        assert counted[name].predicted_churn_rate == pytest.approx(churn / scored_count, abs=5e-5)


def test_same_answers_and_reasons_as_the_service(
    scored: tuple[Path, BatchSummary],
    book: Path,
    service_predictor: ChurnPredictor,
    tmp_path: Path,
) -> None:
    out, _ = scored
    rows = _rows(out)
    same_as_service(rows, service_answers(service_predictor, book, tmp_path))
    rejected = {r["row"]: r for r in rows if r["status"] == "rejected"}
    assert set(rejected) == REJECTED_ROWS
    assert {r["source_file"] for r in rows} == {f"file:{book}"}
    assert rejected[41]["CustomerId"] == "900000041"
    assert rejected[45]["CustomerId"] is None
    assert rejected[43]["reasons"].startswith("has 7 fields, the header has 14")


def test_parquet_scores_as_the_csv_does(
    spark: SparkSession,
    book: Path,
    scored: tuple[Path, BatchSummary],
    bundled_model: BatchModel,
    tmp_path: Path,
) -> None:
    """Typed Parquet columns, the bank layout's extra columns among them, and a null."""
    head = book.read_text(encoding="utf-8").splitlines(keepends=True)[: GOOD_ROWS + 1]
    good = pacsv.read_csv(pa.py_buffer("".join(head).encode()))
    with_null = good.slice(0, 3)
    ages = pa.array([40, None, 41], pa.int64())
    with_null = with_null.set_column(with_null.column_names.index("Age"), "Age", ages)
    folder = tmp_path / "book"
    folder.mkdir()
    pq.write_table(good, folder / "part-0.parquet")
    pq.write_table(with_null.cast(good.schema), folder / "part-1.parquet")
    summary = score_book(spark, Source(str(folder), "parquet"), Sink(str(tmp_path / "out"), False),
                         bundled_model, run="r1")  # fmt: skip
    assert (summary.format, summary.rows_in, summary.rejected) == ("parquet", GOOD_ROWS + 3, 1)
    [rejected] = _rows(tmp_path / "out", status="rejected")
    assert (rejected["row"], rejected["source_file"][-14:]) == (2, "part-1.parquet")
    assert rejected["reasons"] == "Age: is empty (allowed: an integer from 18 to 100)"
    from_csv = {r["CustomerId"]: r["churn_probability"] for r in _rows(scored[0], status="scored")}
    from_parquet = {
        r["CustomerId"]: r["churn_probability"]
        for r in _rows(tmp_path / "out", status="scored")
        if r["source_file"].endswith("part-0.parquet")
    }
    assert from_parquet == {key: from_csv[key] for key in from_parquet}
    assert len(from_parquet) == GOOD_ROWS


def _quote_case(write_book: Callable[..., Path]) -> Path:
    """The issue's file: stray quotes in two cells (an unquoted O"Brien, a quote closed
    late in Surname) and a line break in a third, so that every line's quotes pair."""
    rows = [bank_row(r, 1000 + r, Age=17 if r in (12, 27) else 40) for r in range(1, 31)]
    rows[2] = rows[2].replace("Hargrave", 'O"Brien')
    rows[6] = rows[6].replace("Hargrave", 'Mac"Intyre"')
    rows[4] = rows[4].replace("Hargrave", '"Mac\nDonald, of\r\nSkye"')
    return write_book(BANK_COLUMNS + "\n" + "\n".join(rows) + "\n", "quotes.csv")


def test_the_quote_case_is_scored_row_by_row(
    spark: SparkSession,
    bundled_model: BatchModel,
    service_predictor: ChurnPredictor,
    write_book: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """Read whole (--multiline), Spark gives the service's answers for every record;
    split by lines, the record cut by its line breaks is rejected in its pieces with a
    reason that says so, and every other row is scored: nothing fails, nothing is lost."""
    path = _quote_case(write_book)
    service = service_answers(service_predictor, path, tmp_path)
    assert len(service) == 30
    whole = Sink(str(tmp_path / "whole"), False)
    score_book(spark, Source(str(path), "csv", multiline=True), whole, bundled_model, run="r1")
    same_as_service(_rows(tmp_path / "whole"), service)

    lines = Sink(str(tmp_path / "lines"), False)
    summary = score_book(spark, Source(str(path), "csv"), lines, bundled_model, run="r1")
    rows = _rows(tmp_path / "lines")
    assert summary.rows_in == len(rows) == 32  # row 5 over three lines
    cut = [r for r in rows if r["status"] == "rejected" and "--multiline" in r["reasons"]]
    assert len(cut) == 2
    others = [r for r in rows if r not in cut and r["row"] < 5]
    expected = [r for r in service if r["row"] < 5]
    assert [(r["CustomerId"], r["status"]) for r in others] == [
        (r["CustomerId"], r["status"]) for r in expected
    ]
    assert summary.scored == len([r for r in service if r["status"] == "scored"]) - 1


def test_a_missing_column_is_named(
    spark: SparkSession,
    bundled_model: BatchModel,
    write_book: Callable[..., Path],
    tmp_path: Path,
) -> None:
    path = write_book(BANK_COLUMNS.replace(",Age", "") + "\n" + bank_row() + "\n")
    sink = Sink(str(tmp_path / "out"), False)
    with pytest.raises(InvalidInput, match="missing required columns: Age"):
        score_book(spark, Source(str(path), "csv"), sink, bundled_model, run="r1")
    assert not (tmp_path / "out").exists()


def test_a_failed_rerun_keeps_the_last_good_run(
    spark: SparkSession,
    book: Path,
    bundled_model: BatchModel,
    write_book: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """A rerun of the same run id replaces it whole; one that fails on the executors
    (their model check) or before (no such input) leaves it, and its summary, as it was;
    another run beside it is never touched."""
    out = tmp_path / "out"
    sink = Sink(str(out), False)
    first = score_book(spark, Source(str(book), "csv"), sink, bundled_model, run="day1")
    other = write_book(BANK_COLUMNS + "\n" + bank_row(1, 77) + "\n", "other.csv")
    score_book(spark, Source(str(other), "csv"), sink, bundled_model, run="day2")
    again = score_book(spark, Source(str(book), "csv"), sink, bundled_model, run="day1")
    assert again.rows_in == first.rows_in == len(_rows(out, "day1"))
    assert {r["job_id"] for r in _rows(out, "day1")} == {again.job_id}

    tampered = dataclasses.replace(bundled_model, sha256="0" * 64)
    with pytest.raises(ModelIntegrityError, match="Refusing to load the batch model"):
        score_book(spark, Source(str(book), "csv"), sink, tampered, run="day1")
    with pytest.raises(BadRequest, match="typo.csv"):
        score_book(spark, Source(str(tmp_path / "typo.csv"), "csv"), sink, bundled_model,
                   run="day1")  # fmt: skip
    assert {r["job_id"] for r in _rows(out, "day1")} == {again.job_id}
    assert read_summary(spark, sink, "day1") == again
    assert [r["CustomerId"] for r in _rows(out, "day2")] == ["77"]
    assert read_summary(spark, sink, None).run == "day2"  # the latest


def test_a_table_in_and_a_table_out_through_the_catalog(
    spark: SparkSession, book: Path, bundled_model: BatchModel, tmp_path: Path
) -> None:
    """The session catalog's Parquet tables (no Hive): the book as a typed table, the
    results into a partitioned table it creates, a rerun replacing only its partition."""
    head = book.read_text(encoding="utf-8").splitlines(keepends=True)[: GOOD_ROWS + 1]
    (tmp_path / "good.csv").write_text("".join(head), encoding="utf-8")
    typed = spark.read.options(header=True, inferSchema=True).csv(str(tmp_path / "good.csv"))
    typed.write.saveAsTable("bank_book")
    sink = Sink("churn_scores", table=True)
    first = score_book(spark, Source("bank_book", "table"), sink, bundled_model, run="day1")
    score_book(spark, Source("bank_book", "table"), sink, bundled_model, run="day2")
    again = score_book(spark, Source("bank_book", "table"), sink, bundled_model, run="day1")
    counts = {
        r["run"]: r["count"] for r in spark.table("churn_scores").groupBy("run").count().collect()
    }
    assert counts == {"day1": GOOD_ROWS, "day2": GOOD_ROWS}
    assert first.rows_in == again.rows_in == GOOD_ROWS
    assert read_summary(spark, sink, "day1").job_id == again.job_id
    files = {r["source_file"] for r in spark.table("churn_scores").collect()}
    assert all("bank_book" in name for name in files)


def test_a_table_that_would_be_overwritten_whole_is_refused(
    spark: SparkSession, book: Path, bundled_model: BatchModel
) -> None:
    spark.sql(
        f"CREATE TABLE plain_scores ({RESULT_DDL}, run STRING) USING parquet PARTITIONED BY (run)"
    )
    with pytest.raises(InvalidInput, match="partitionOverwriteMode"):
        score_book(spark, Source(str(book), "csv"), Sink("plain_scores", table=True),
                   bundled_model, run="r1")  # fmt: skip
