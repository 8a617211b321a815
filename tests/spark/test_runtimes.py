"""The batch wheel on the Pythons and Sparks of the platforms' runtimes other than the
project's own (Python 3.11 with the lock's pyspark 4.3, and 3.5 in `make pytest-spark35`):
Python 3.10 with Spark 3.5 (Databricks 14.3 LTS) and 3.12 with Spark 4.0 (17.3 LTS), each
resolved from PyPI as a cluster library is (`make batch-runtimes`). The job there answers
as the service does here, row for row."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from churn.scoring.predictor import ChurnPredictor
from tests.conftest import ROOT, run_outside, uv
from tests.spark.conftest import ROWS_IN, same_as_service, service_answers

RUNTIMES = {"3.10": "3.5.", "3.12": "4.0."}  # Python: its pyspark (Makefile BATCH_RUNTIMES)
VERSIONS = "import sys, pyspark; print(*sys.version_info[:2], pyspark.__version__)"


@pytest.mark.slow
@pytest.mark.parametrize("python", sorted(RUNTIMES))
def test_the_wheel_answers_as_the_service_on_the_runtimes_python(
    python: str,
    batch_wheel: Path,
    book: Path,
    model_file: tuple[Path, str],
    service_predictor: ChurnPredictor,
    tmp_path: Path,
) -> None:
    venv = ROOT / "build" / f"batch-py{python}"
    if not (venv / "bin" / "python").exists():
        pytest.skip(f"{venv} is not built: `make batch-runtimes` builds it where a Python "
                    f"{python} is found (pyenv or PATH)")  # fmt: skip
    # This tree's wheel in place of the one the environment was built with.
    uv("pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
       "--no-deps", "--reinstall", str(batch_wheel))  # fmt: skip

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return run_outside(*command, cwd=tmp_path)

    versions = run(str(venv / "bin" / "python"), "-c", VERSIONS)
    major, minor, spark = versions.stdout.split()
    assert (f"{major}.{minor}", spark[:4]) == (python, RUNTIMES[python]), versions.stderr
    model, digest = model_file
    out = tmp_path / "out"
    scored = run(str(venv / "bin" / "churn-batch"), "score", str(book), "--out", str(out),
                 "--run-id", "r1", "--master", "local[1]", "--conf", "spark.ui.enabled=false",
                 "--model", str(model), "--model-sha256", digest)  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert scored.stdout.startswith(f"{ROWS_IN} rows: "), scored.stdout
    rows: list[dict[str, Any]] = pq.read_table(out / "run=r1").to_pylist()
    same_as_service(rows, service_answers(service_predictor, book, tmp_path))
    listed = run(str(venv / "bin" / "churn-batch"), "call-list", str(out), "--top", "3",
                 "--master", "local[1]")  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "3 customers to call, run r1" in listed.stdout
