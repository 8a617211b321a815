"""The job on a standalone cluster (a master and a worker on 127.0.0.1), submitted as a
platform's scheduler submits it: spark-submit in cluster deploy mode, so that the driver
runs on the worker, with a model file and its digest and no model store anywhere.

spark-submit refuses a Python main file in cluster mode on a standalone master ("not
supported for python applications on standalone clusters"), so the job goes as YARN's
cluster mode sends a Python driver: Spark's own `org.apache.spark.deploy.PythonRunner`
as the main class, from Spark's own jar, with the main file and its arguments after it.
The driver's Python starts before Spark can ship it anything, so it is an environment
unpacked on the node; the executors get theirs with `--archives`. In `make test` both
are this environment's Python and the main file is the source tree's; `make
spark-cluster` runs the same test with the packed environment (CHURN_SPARK_ENV), the
driver on the copy of it a node has and on the wheel's main file, as a cluster gets it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest
from pyspark.find_spark_home import _find_spark_home
from pyspark.sql import SparkSession

from churn.spark.output import Sink
from churn.spark.summary import read_summary
from tests.spark.cluster import Cluster, standalone
from tests.spark.conftest import REJECTED_ROWS, ROWS_IN

BIN = Path(sys.executable).parent
MAIN = Path(__file__).resolve().parents[2] / "churn" / "workflows" / "batch.py"
SPARK_JAR = next((Path(_find_spark_home()) / "jars").glob("spark-core_*.jar"))


@dataclass(frozen=True)
class Driver:
    state: str  # as the master reported it to spark-submit: FINISHED, FAILED, ...
    output: str  # the driver's stdout and stderr, which PythonRunner merges


def _submit(
    cluster: Cluster, work: Path, settings: list[str], *args: str, env: dict[str, str]
) -> Driver:
    done = subprocess.run(
        [str(BIN / "spark-submit"), "--master", cluster.url, "--deploy-mode", "cluster",
         "--name", "churn-batch", "--conf", "spark.standalone.submit.waitAppCompletion=true",
         *settings, "--class", "org.apache.spark.deploy.PythonRunner", str(SPARK_JAR), *args],
        capture_output=True, text=True, timeout=600, check=False,
        # spark-submit finds Spark through the python3 on PATH: the environment's first.
        env={**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    # spark-submit exits 0 whatever the driver's end; the master's state says it.
    assert done.returncode == 0, done.stderr[-3000:]
    ended = re.search(r"State of driver (driver-\S+) is (\w+), exiting", done.stderr)
    assert ended, done.stderr[-3000:]
    driver, state = ended.groups()
    return Driver(state, (work / driver / "stdout").read_text(encoding="utf-8"))


def _environments(tmp_path: Path) -> tuple[list[str], Path, Path]:
    """Settings for the executors, the driver's Python and the main file it runs."""
    packed = os.environ.get("CHURN_SPARK_ENV")
    if not packed:
        return ["--conf", f"spark.pyspark.python={sys.executable}"], Path(sys.executable), MAIN
    node = tmp_path / "node-env"  # the archive as a platform unpacks it on every node
    with tarfile.open(packed) as archive:
        archive.extractall(node, filter="tar")
    main = next(node.glob("lib/python3*/site-packages/churn/workflows/batch.py"))
    executors = ["--archives", f"{Path(packed).resolve()}#env",
                 "--conf", "spark.pyspark.python=./env/bin/python"]  # fmt: skip
    return executors, node / "bin" / "python", main


@pytest.mark.slow
def test_score_and_call_list_in_cluster_deploy_mode(
    spark: SparkSession, book: Path, model_file: tuple[Path, str], tmp_path: Path
) -> None:
    model, digest = model_file
    executors, python, main = _environments(tmp_path)
    if pyspark.__version__.startswith("3."):
        # Spark 3.5's worker starts the driver's JVM without the module openings Java 17
        # needs, which spark-submit gives a driver in client mode: Spark's own list, as
        # this session's context added it.
        opens = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions")
        executors += ["--conf", f"spark.driver.extraJavaOptions={opens}"]
    settings = [
        *executors,
        "--conf", f"spark.pyspark.driver.python={python}",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.driver.memory=512m",
        "--conf", "spark.executor.memory=512m",
    ]  # fmt: skip
    empty = tmp_path / "no-store"
    empty.mkdir()
    env = {"BENTOML_HOME": str(empty)}
    out = tmp_path / "out"
    score = ["score", str(book), "--out", str(out), "--run-id", "2026-11-29", "--model", str(model)]
    work = tmp_path / "cluster" / "work"
    # One core for the driver, one for an executor, as a worker's slots.
    with standalone(tmp_path / "cluster", cores=2, memory="2g") as cluster:
        refused = _submit(cluster, work, settings, str(main), "", *score,
                          "--model-sha256", "0" * 64, env=env)  # fmt: skip
        scored = _submit(cluster, work, settings, str(main), "", *score,
                         "--model-sha256", digest, env=env)  # fmt: skip
        listed = _submit(cluster, work, settings, str(main), "",
                         "call-list", str(out), "--top", "3", env=env)  # fmt: skip
        drivers = sorted(work.glob("driver-*"))
        executor_logs = list(work.glob("app-*/*/stderr"))
    assert refused.state == "FAILED"
    assert f"Refusing to load {model}: its SHA-256 is {digest}" in refused.output
    assert scored.state == "FINISHED", scored.output[-3000:]
    assert listed.state == "FINISHED", listed.output[-3000:]
    assert f"{ROWS_IN} rows: " in scored.output
    assert "3 customers to call, run 2026-11-29" in listed.output
    assert len(drivers) == 3  # each driver ran on the worker, in its own folder
    assert len(executor_logs) == 2  # the refused run started no executor
    assert not list(empty.iterdir())  # nothing looked for a store
    summary = read_summary(spark, Sink(str(out), False), None)
    assert summary.master == cluster.url
    assert (summary.rows_in, summary.rejected) == (ROWS_IN, len(REJECTED_ROWS))
    assert summary.model.sha256 == digest
