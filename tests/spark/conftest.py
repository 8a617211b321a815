"""Real Spark in local mode, one session for the package's tests, on small data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyspark import SparkContext

from churn.model.synth import write_synthetic_csv
from churn.spark.job import BatchSummary, score_book
from churn.spark.model import DriverModel, resolve
from churn.spark.session import finish, start
from tests.conftest import ROOT
from tests.factories import bank_row

BUNDLED_MODEL = ROOT / "models" / "churn_prediction_model_v1_0.joblib"
# Short-lived JVMs spend most of their CPU compiling; C1 alone starts them sooner.
TEST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
TEST_CONF = {"spark.driver.extraJavaOptions": TEST_JVM, "spark.sql.shuffle.partitions": "2"}

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


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkContext]:
    context = start(master="local[2]", app_name="churn tests", conf=TEST_CONF)
    yield context
    finish(context)


@pytest.fixture(scope="session")
def bundled_model() -> DriverModel:
    return resolve(str(BUNDLED_MODEL))


@pytest.fixture(scope="session")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 synthetic customers in the bank layout, then rows the service rejects."""
    path = write_synthetic_csv(tmp_path_factory.mktemp("book") / "book.csv", GOOD_ROWS, seed=11)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(BAD_ROWS) + "\n")
    return path


@pytest.fixture(scope="session")
def scored(
    spark: SparkContext,
    book: Path,
    bundled_model: DriverModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, BatchSummary]:
    """The book scored once, in the package's Spark session."""
    out = tmp_path_factory.mktemp("scored") / "out"
    return out, score_book(spark, str(book), str(out), bundled_model)


@pytest.fixture
def write_book(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(text: str, name: str = "book.csv") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
