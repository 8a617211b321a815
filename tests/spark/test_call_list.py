"""`churn batch call-list`: order, one line per customer, exact reasons, safe ids."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark import SparkContext

from churn.clients.client import ChurnClient
from churn.record.errors import BadRequest, ModelIntegrityError
from churn.record.schema import FEATURE_NAMES, Customer
from churn.scoring.predictor import ChurnPredictor
from churn.spark.call_list import build_call_list
from churn.spark.job import BatchSummary, score_book
from churn.spark.model import DriverModel
from tests.conftest import LiveService
from tests.factories import BANK_COLUMNS, bank_row


def _book(directory: Path) -> list[dict[str, Any]]:
    return [row for row in pq.read_table(directory / "scored").to_pylist() if row["CustomerId"]]


def _riskiest(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-float(r["churn_probability"]), str(r["CustomerId"])))[
        :count
    ]


def _reasons_from(predictor: ChurnPredictor, row: dict[str, Any]) -> list[str]:
    customer = Customer.model_validate({name: row[name] for name in FEATURE_NAMES})
    _, factors = predictor.scorer.explain(customer)
    return [
        f"{f.feature} = {f.value} (+{f.contribution:.3f})" for f in factors if f.contribution > 0
    ][:3]


def test_the_riskiest_customers_with_their_reasons(
    spark: SparkContext, scored: tuple[Path, BatchSummary], bundled_model: DriverModel
) -> None:
    out, _ = scored
    result = build_call_list(spark, str(out), 5)
    assert result.path == f"{out}/call-list.csv"
    with (out / "call-list.csv").open(newline="", encoding="utf-8") as handle:
        listed = list(csv.DictReader(handle))
    expected = _riskiest(_book(out), 5)
    assert [row["rank"] for row in listed] == ["1", "2", "3", "4", "5"]
    assert [row["CustomerId"].removeprefix("'") for row in listed] == [
        row["CustomerId"] for row in expected
    ]
    assert [float(row["churn_probability"]) for row in listed] == [
        row["churn_probability"] for row in expected
    ]
    predictor = ChurnPredictor(bundled_model.loaded)
    for row, source in zip(listed, expected, strict=True):
        assert [row["reason_1"], row["reason_2"], row["reason_3"]] == _reasons_from(
            predictor, source
        )
    # The formula-like id is among the riskiest, and a spreadsheet shows it as text.
    assert "'=HYPERLINK(1)" in [row["CustomerId"] for row in listed]


def test_per_segment(spark: SparkContext, scored: tuple[Path, BatchSummary]) -> None:
    out, _ = scored
    result = build_call_list(spark, str(out), 2, by="Geography", out=str(out / "by.csv"))
    listed = result.table.to_pylist()
    book = _book(out)
    for geography in ("France", "Germany", "Spain"):
        mine = [row for row in listed if row["Geography"] == geography]
        expected = _riskiest([r for r in book if r["Geography"] == geography], 2)
        assert [row["rank"] for row in mine] == [1, 2]
        assert [row["CustomerId"].removeprefix("'") for row in mine] == [
            r["CustomerId"] for r in expected
        ]


@pytest.mark.slow
def test_reasons_are_the_services_explanations(
    spark: SparkContext, scored: tuple[Path, BatchSummary], live_service: LiveService
) -> None:
    """/v2/explain of the running service, for the listed customers."""
    out, _ = scored
    listed = build_call_list(spark, str(out), 3, out=str(out / "three.csv")).table.to_pylist()
    book = {row["CustomerId"]: row for row in _book(out)}
    with ChurnClient(live_service.url) as client:
        for row in listed:
            source = book[row["CustomerId"].removeprefix("'")]
            explanation = client.explain({name: source[name] for name in FEATURE_NAMES})
            assert explanation.prediction.churn_probability == row["churn_probability"]
            up = [f for f in explanation.factors if f.direction == "up"][:3]
            assert [row["reason_1"], row["reason_2"], row["reason_3"]] == [
                f"{f.feature} = {f.value} (+{f.contribution:.3f})" for f in up
            ]


def test_an_id_scored_twice_is_listed_once(
    spark: SparkContext, bundled_model: DriverModel, tmp_path: Path
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
    score_book(spark, str(tmp_path / "book.csv"), str(tmp_path / "out"), bundled_model)
    listed = build_call_list(spark, str(tmp_path / "out"), 2).table.to_pylist()
    assert [row["CustomerId"] for row in listed][0] == "7"
    assert len({row["CustomerId"] for row in listed}) == 2


def test_a_model_that_is_not_the_scoring_one_is_refused(
    spark: SparkContext, scored: tuple[Path, BatchSummary], tmp_path: Path
) -> None:
    out, summary = scored
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    recorded = json.loads((copy / "summary.json").read_text())
    recorded["model"]["sha256"] = "f" * 64
    (copy / "summary.json").write_text(json.dumps(recorded))
    with pytest.raises(ModelIntegrityError, match="cannot explain it"):
        build_call_list(spark, str(copy), 3)
    (copy / "summary.json").unlink()
    with pytest.raises(BadRequest, match="has no summary.json"):
        build_call_list(spark, str(copy), 3)
