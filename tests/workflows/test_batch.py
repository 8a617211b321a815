"""`churn-batch` and the main file spark-submit is given (churn/workflows/batch.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CHURN_BATCH = str(Path(sys.executable).parent / "churn-batch")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_path_names_the_file_spark_submit_is_given() -> None:
    for command in ([CHURN_BATCH], [sys.executable, "-m", "churn.workflows.batch"]):
        done = _run(*command, "--path")
        assert done.returncode == 0, done.stderr
        assert Path(done.stdout.strip()) == ROOT / "churn" / "workflows" / "batch.py"


def test_the_file_runs_as_a_script_with_the_batch_commands_only() -> None:
    # As spark-submit runs it: a file, its folder first on sys.path.
    main = str(ROOT / "churn" / "workflows" / "batch.py")
    done = _run(sys.executable, main, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: churn-batch" in done.stdout
    assert {"score", "call-list"} <= set(done.stdout.split())
    assert "import-model" not in done.stdout
