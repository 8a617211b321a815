"""The job on a standalone cluster (a master and a worker on 127.0.0.1), submitted as a
platform's scheduler submits it: spark-submit, the job's main file, a model file with
its digest and no model store anywhere.

A standalone master runs a Python application's driver only where it is submitted
(spark-submit refuses `--deploy-mode cluster` for Python there; Kubernetes and YARN take
it); what cluster deploy mode needs of the driver, it is checked for here: no store, no
local model but the file named by path and digest. In `make test` the executors run
this environment's Python; `make spark-cluster` runs the same test with the packed
environment (CHURN_SPARK_ENV), as a cluster gets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from churn.spark.output import Sink
from churn.spark.summary import read_summary
from tests.spark.cluster import standalone
from tests.spark.conftest import REJECTED_ROWS, ROWS_IN

BIN = Path(sys.executable).parent
MAIN = Path(__file__).resolve().parents[2] / "churn" / "workflows" / "batch.py"


def _submit(master: str, settings: list[str], *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(BIN / "spark-submit"), "--master", master, *settings, str(MAIN), *args],
        capture_output=True, text=True, timeout=600, check=False,
        # spark-submit finds Spark through the python3 on PATH: the environment's first.
        env={**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_score_and_call_list_on_a_standalone_cluster(
    spark: SparkSession, book: Path, model_file: tuple[Path, str], tmp_path: Path
) -> None:
    model, digest = model_file
    settings = [
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.executor.memory=512m",
        "--conf", f"spark.pyspark.driver.python={sys.executable}",
    ]  # fmt: skip
    packed = os.environ.get("CHURN_SPARK_ENV")
    if packed:
        settings += [
            "--archives", f"{Path(packed).resolve()}#env",
            "--conf", "spark.pyspark.python=./env/bin/python",
        ]  # fmt: skip
    else:
        settings += ["--conf", f"spark.pyspark.python={sys.executable}"]
    empty = tmp_path / "no-store"
    empty.mkdir()
    env = {"BENTOML_HOME": str(empty)}
    out = tmp_path / "out"
    with standalone(tmp_path / "cluster") as cluster:
        scored = _submit(cluster.url, settings, "score", str(book), "--out", str(out),
                         "--run-id", "2026-11-29", "--model", str(model),
                         "--model-sha256", digest, env=env)  # fmt: skip
        listed = _submit(cluster.url, settings, "call-list", str(out), "--top", "3", env=env)
        executors = list((tmp_path / "cluster" / "work").glob("app-*/*/stderr"))
    assert scored.startswith(f"{ROWS_IN} rows: ")
    assert "3 customers to call, run 2026-11-29" in listed
    assert len(executors) == 2  # one executor per application ran on the worker
    assert not list(empty.iterdir())  # nothing looked for a store
    summary = read_summary(spark, Sink(str(out), False), None)
    assert summary.master == cluster.url
    assert (summary.rows_in, summary.rejected) == (ROWS_IN, len(REJECTED_ROWS))
    assert summary.model.sha256 == digest
