"""`churn batch call-list`: order, one line per customer, exact reasons, safe ids."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from churn.model.synth import write_synthetic_csv
from churn.record.errors import InvalidInput, ModelIntegrityError
from churn.record.schema import FEATURE_NAMES, CustomerFeatures
from churn.spark.book import Source
from churn.spark.call_list import build_call_list
from churn.spark.job import score_book
from churn.spark.model import BatchModel
from churn.spark.output import Sink
from churn.spark.summary import BatchSummary
from tests.factories import BANK_COLUMNS, bank_row


def _book(directory: Path, run: str = "r1") -> list[dict[str, Any]]:
    rows = pq.read_table(directory / f"run={run}").to_pylist()
    return [row for row in rows if row["status"] == "scored" and row["CustomerId"]]


def _riskiest(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-r["churn_probability"], r["CustomerId"]))[:count]


def _reasons(model: BatchModel, row: dict[str, Any]) -> list[str]:
    customer = CustomerFeatures.model_validate({name: row[name] for name in FEATURE_NAMES})
    _, factors = model.scorer().explain(customer)
    return [
        f"{f.feature} = {f.value} (+{f.contribution:.3f})" for f in factors if f.contribution > 0
    ][:3]


def _csv(folder: str, run: str = "r1") -> list[dict[str, str]]:
    [part] = list(Path(folder, f"run={run}").glob("part-*.csv"))
    with part.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_riskiest_customers_with_their_reasons(
    spark: SparkSession, scored: tuple[Path, BatchSummary], bundled_model: BatchModel
) -> None:
    out, _ = scored
    result = build_call_list(spark, Sink(str(out), False), 5)
    assert result.path == f"{out}/_call_list"
    listed = _csv(result.path)
    expected = _riskiest(_book(out), 5)
    assert [row["rank"] for row in listed] == ["1", "2", "3", "4", "5"]
    assert [row["CustomerId"].removeprefix("'") for row in listed] == [
        row["CustomerId"] for row in expected
    ]
    assert [float(row["churn_probability"]) for row in listed] == [
        row["churn_probability"] for row in expected
    ]
    for row, source in zip(listed, expected, strict=True):
        assert [row["reason_1"], row["reason_2"], row["reason_3"]] == _reasons(
            bundled_model, source
        )
    # The formula-like id is among the riskiest, and a spreadsheet shows it as text.
    assert "'=HYPERLINK(1)" in [row["CustomerId"] for row in listed]


def test_per_segment(spark: SparkSession, scored: tuple[Path, BatchSummary]) -> None:
    out, _ = scored
    result = build_call_list(spark, Sink(str(out), False), 2, by="Geography", out=str(out / "by"))
    listed = result.table.to_pylist()
    book = _book(out)
    for geography in ("France", "Germany", "Spain"):
        mine = [row for row in listed if row["Geography"] == geography]
        expected = _riskiest([r for r in book if r["Geography"] == geography], 2)
        assert [row["rank"] for row in mine] == [1, 2]
        assert [row["CustomerId"].removeprefix("'") for row in mine] == [
            r["CustomerId"] for r in expected
        ]
    assert len(_csv(str(out / "by"))) == 6


def test_an_id_scored_twice_is_listed_once(
    spark: SparkSession, bundled_model: BatchModel, tmp_path: Path
) -> None:
    risky = {"Geography": "Germany", "NumOfProducts": 3, "IsActiveMember": 0}
    lines = [
        BANK_COLUMNS,
        bank_row(1, 7, Age=60, **risky),
        bank_row(2, 7, Age=59, **risky),
        bank_row(3, 8, Age=40),
        bank_row(4, 9, Age=30),
    ]
    (tmp_path / "book.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sink = Sink(str(tmp_path / "out"), False)
    score_book(spark, Source(str(tmp_path / "book.csv"), "csv"), sink, bundled_model, run="r1")
    listed = build_call_list(spark, sink, 2).table.to_pylist()
    assert [row["CustomerId"] for row in listed][0] == "7"
    assert len({row["CustomerId"] for row in listed}) == 2


def test_a_model_that_is_not_the_scoring_one_is_refused(
    spark: SparkSession, scored: tuple[Path, BatchSummary], tmp_path: Path
) -> None:
    out, summary = scored
    with pytest.raises(ModelIntegrityError, match=f"SHA-256 {summary.model.sha256}"):
        build_call_list(spark, Sink(str(out), False), 3, model_sha256="f" * 64)
    with pytest.raises(InvalidInput, match="has no summary of run r9"):
        build_call_list(spark, Sink(str(out), False), 3, run="r9")


def test_ordinary_data_lists_without_a_tolerance_failure(
    spark: SparkSession, bundled_model: BatchModel, tmp_path: Path
) -> None:
    """The issue's case: 20,000 synthetic customers (seed 3), the top 20 overall and per
    Geography, each explained: the old check compared two rounded probabilities."""
    book = write_synthetic_csv(tmp_path / "book.csv", 20_000, seed=3)
    sink = Sink(str(tmp_path / "out"), False)
    summary = score_book(spark, Source(str(book), "csv"), sink, bundled_model, run="r1")
    assert (summary.rows_in, summary.rejected) == (20_000, 0)
    assert build_call_list(spark, sink, 20).table.num_rows == 20
    assert build_call_list(spark, sink, 20, by="Geography").table.num_rows == 60
