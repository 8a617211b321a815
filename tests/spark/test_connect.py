"""`churn batch` over Spark Connect (`SPARK_REMOTE`), as on Databricks' standard-access
and serverless compute, where a job has no SparkContext, no RDDs and no JVM of its own:
the job, a table rerun and the call list through a real Spark Connect server, answering
as the service does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from churn.scoring.predictor import ChurnPredictor
from churn.spark.output import Sink
from churn.spark.summary import read_summary
from tests.conftest import run_churn
from tests.spark.conftest import REJECTED_ROWS, ROWS_IN, same_as_service, service_answers
from tests.spark.connect import MASTER, available, connect_server

pytestmark = pytest.mark.skipif(
    not available(), reason="this pyspark carries no Spark Connect server (3.5's is a package)"
)


@pytest.mark.slow
def test_score_rerun_and_call_list_over_spark_connect(
    spark: SparkSession,
    book: Path,
    model_file: tuple[Path, str],
    service_predictor: ChurnPredictor,
    tmp_path: Path,
) -> None:
    model, digest = model_file
    out = tmp_path / "out"
    with_model = ["--model", str(model), "--model-sha256", digest]
    with connect_server(tmp_path / "server") as remote:
        env = {"SPARK_REMOTE": remote}
        scored = run_churn("batch", "score", str(book), "--out", str(out), "--run-id", "r1",
                           *with_model, env=env)  # fmt: skip
        to_table = [
            run_churn("batch", "score", str(book), "--output-table", "bank_scores",
                      "--run-id", "r1", *with_model, env=env)
            for _ in range(2)
        ]  # fmt: skip
        listed = run_churn("batch", "call-list", str(out), "--top", "3", env=env)
        by_country = run_churn("batch", "call-list", "--table", "bank_scores", "--top", "2",
                               "--by", "Geography", "--out", str(tmp_path / "calls.csv"),
                               env=env)  # fmt: skip
        refused = run_churn("batch", "score", str(book), "--out", str(out), "--master",
                            "local[1]", *with_model, env=env)  # fmt: skip
        wrong_digest = run_churn("batch", "score", str(book), "--out", str(tmp_path / "bad"),
                                 "--model", str(model), "--model-sha256", "0" * 64,
                                 env=env)  # fmt: skip
    for done in (scored, *to_table, listed, by_country):
        assert done.returncode == 0, done.stderr[-3000:]
    expected = (
        f"{ROWS_IN} rows: {ROWS_IN - len(REJECTED_ROWS)} scored, {len(REJECTED_ROWS)} rejected"
    )
    assert scored.stdout.startswith(expected), scored.stdout
    assert all(done.stdout.startswith(expected) for done in to_table)
    table = tmp_path / "server" / "warehouse" / "bank_scores"  # the server's catalog's files
    assert pq.read_table(table).num_rows == ROWS_IN  # the rerun replaced run r1
    rows: list[dict[str, Any]] = pq.read_table(out / "run=r1").to_pylist()
    same_as_service(rows, service_answers(service_predictor, book, tmp_path))
    summary = read_summary(spark, Sink(str(out), False), None)
    assert summary.master == MASTER  # the server's session, not one the client started
    assert (summary.rows_in, summary.rejected) == (ROWS_IN, len(REJECTED_ROWS))
    assert "3 customers to call, run r1" in listed.stdout
    assert "customers to call, run r1" in by_country.stdout
    assert (tmp_path / "calls.csv").exists()
    assert refused.returncode != 0
    assert "--master and --conf apply only when churn starts Spark itself" in refused.stderr
    assert wrong_digest.returncode != 0
    assert "Refusing to load" in wrong_digest.stderr
    assert "Traceback" not in refused.stderr + wrong_digest.stderr
