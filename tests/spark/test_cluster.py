"""The same job on a standalone cluster: a master and a worker on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_churn
from tests.spark.cluster import standalone
from tests.spark.conftest import REJECTED_ROWS, ROWS_IN, TEST_JVM

SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")
# spark-submit finds Spark through the `python3` on PATH: the environment's, as when active.
ACTIVE_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.mark.slow
def test_score_and_call_list_on_a_standalone_cluster(
    book: Path, bundled_store: Path, tmp_path: Path
) -> None:
    """`churn batch` as a user runs it, with the service's model from the store by its
    default tag; the executor is a JVM of the worker's, with its own Python workers. In
    `make test` the executors run this environment's Python; `make spark-cluster` runs
    the same test with the packed environment (CHURN_SPARK_ENV), as a cluster gets it."""
    spark = [
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.executor.memory=512m",
        "--conf", f"spark.driver.extraJavaOptions={TEST_JVM}",
        "--conf", f"spark.executor.extraJavaOptions={TEST_JVM}",
    ]  # fmt: skip
    packed = os.environ.get("CHURN_SPARK_ENV")  # make spark-cluster: the packed environment
    if packed:
        spark += [
            "--conf", f"spark.archives={Path(packed).resolve()}#env",
            "--conf", "spark.pyspark.python=./env/bin/python",
        ]  # fmt: skip
    env = {"BENTOML_HOME": str(bundled_store)}
    with standalone(tmp_path / "cluster") as cluster:
        out = tmp_path / "out"
        scored = run_churn(
            "batch", "score", str(book), "--out", str(out), "--master", cluster.url, *spark,
            env=env,
        )  # fmt: skip
        assert scored.returncode == 0, scored.stderr
        # The call list through spark-submit, as a scheduled job on a cluster runs it.
        listed = subprocess.run(
            [SPARK_SUBMIT, "--master", cluster.url, *spark,
             "--conf", f"spark.pyspark.driver.python={sys.executable}",
             str(ROOT / "churn" / "spark" / "submit.py"), "call-list", str(out), "--top", "3"],
            capture_output=True, text=True, env={**os.environ, **env, "PATH": ACTIVE_PATH},
            timeout=600, check=False,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        executors = list((tmp_path / "cluster" / "work").glob("app-*/*/stderr"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["master"] == cluster.url
    assert (summary["rows_in"], summary["rejected"]) == (ROWS_IN, len(REJECTED_ROWS))
    assert summary["model"]["tag"].startswith("churn_model:")
    assert len((out / "call-list.csv").read_text().splitlines()) == 4
    assert len(executors) == 2  # one executor per application ran on the worker
    assert "3 customers to call" in listed.stdout
