"""Real Spark in local mode, one session for the package's tests, on small data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from pyspark.sql import SparkSession

from churn.model.artifact import ModelMetadata, metadata_path_for
from churn.model.booster import TreeModel
from churn.model.store import LoadedModel
from churn.model.synth import write_synthetic_csv
from churn.scoring.files import score_file
from churn.scoring.predictor import ChurnPredictor
from churn.spark import model as batch_model
from churn.spark.book import Source
from churn.spark.job import score_book
from churn.spark.output import Sink
from churn.spark.session import start
from churn.spark.summary import BatchSummary
from tests.conftest import ROOT, run_churn
from tests.factories import bank_row

BUNDLED_MODEL = ROOT / "models" / "churn_prediction_model_v1_0.joblib"
TEST_CONF = {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"}

# Rows the service rejects, each for one reason, and one it scores with a formula-like
# id (high risk, so that it is on the call list). Row numbers follow the 40 good rows.
BAD_ROWS = [
    bank_row(41, 900000041, CreditScore="abc"),
    "",  # a blank line is no record
    bank_row(42, 900000042, Geography="Mars"),
    "43,900000043,Smith,600,France,Male,41",
    bank_row(44, 900000044, Age=17),
    bank_row(45, "", NumOfProducts=5),
    bank_row(46, 900000046, Balance=""),
    bank_row(47, "=HYPERLINK(1)", Geography="Germany", Age=58, NumOfProducts=3, IsActiveMember=0),
    bank_row(48, 900000048, Tenure="1.5"),
    "   ",
]
GOOD_ROWS = 40
ROWS_IN = GOOD_ROWS + 8  # the non-blank bad rows
REJECTED_ROWS = {41, 42, 43, 44, 45, 46, 48}


ANSWER = ("churn_probability", "prediction", "risk_band")


def service_answers(predictor: ChurnPredictor, path: Path, folder: Path) -> list[dict[str, Any]]:
    """The service's own file scorer (behind /v2/predict-file) on the same file."""
    out = folder / f"{path.name}.service.csv"
    score_file(predictor, path, out)
    types = {"CustomerId": pa.string(), "errors": pa.string()}
    rows: list[dict[str, Any]] = pacsv.read_csv(
        out, convert_options=pacsv.ConvertOptions(column_types=types)
    ).to_pylist()
    for row in rows:  # its CSV makes formula-like ids text for a spreadsheet
        if row["CustomerId"] is not None:
            row["CustomerId"] = row["CustomerId"].removeprefix("'")
    return rows


def same_as_service(
    rows: list[dict[str, Any]], service: list[dict[str, Any]], *, numbered: bool = True
) -> None:
    """Every row of the service's answer, scored alike or rejected with its reasons."""
    scored = {r["CustomerId"]: tuple(r[k] for k in ANSWER) for r in rows if r["status"] == "scored"}
    expected = {
        r["CustomerId"]: tuple(r[k] for k in ANSWER) for r in service if r["status"] == "scored"
    }
    assert scored == expected
    key = "row" if numbered else "CustomerId"
    rejected = {r[key]: r["reasons"] for r in rows if r["status"] == "rejected"}
    assert rejected == {r[key]: r["errors"] for r in service if r["status"] == "rejected"}
    assert len(rows) == len(service)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """A session this process starts, with a Hive-less catalog of Parquet tables."""
    warehouse = tmp_path_factory.mktemp("warehouse")
    conf = TEST_CONF | {"spark.sql.warehouse.dir": str(warehouse)}
    session = start(master="local[2]", app_name="churn tests", conf=conf)
    yield session.spark
    session.stop()


@pytest.fixture(scope="session")
def model_file(bundled_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The store's model exported as `churn batch export-model` does, and its digest."""
    path = tmp_path_factory.mktemp("model") / "churn-model.ubj"
    result = run_churn(
        "batch", "export-model", "--out", str(path), env={"BENTOML_HOME": str(bundled_store)}
    )
    assert result.returncode == 0, result.stderr
    digest, name = result.stdout.split()
    assert name == str(path)
    return path, digest


@pytest.fixture(scope="session")
def bundled_model(model_file: tuple[Path, str]) -> batch_model.BatchModel:
    path, digest = model_file
    return batch_model.read(None, str(path), digest)


@pytest.fixture(scope="session")
def service_predictor(bundled_model: batch_model.BatchModel) -> ChurnPredictor:
    """The service's predictor on the same trees and the bundled model's metadata."""
    metadata = ModelMetadata.read(metadata_path_for(BUNDLED_MODEL))
    tree = TreeModel.from_bytes(bundled_model.data)
    return ChurnPredictor(LoadedModel(tree, metadata, tag=bundled_model.tag))


@pytest.fixture(scope="session")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 synthetic customers in the bank layout, then rows the service rejects."""
    path = write_synthetic_csv(tmp_path_factory.mktemp("book") / "book.csv", GOOD_ROWS, seed=11)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(BAD_ROWS) + "\n")
    return path


@pytest.fixture(scope="session")
def scored(
    spark: SparkSession,
    book: Path,
    bundled_model: batch_model.BatchModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, BatchSummary]:
    """The book scored once into a folder, as run r1."""
    out = tmp_path_factory.mktemp("scored") / "out"
    sink = Sink(str(out), table=False)
    return out, score_book(spark, Source(str(book), "csv"), sink, bundled_model, run="r1")


@pytest.fixture
def write_book(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(text: str, name: str = "book.csv") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
