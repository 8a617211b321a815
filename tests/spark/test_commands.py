"""`churn batch` from the command line: failures before Spark starts are one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_churn
from tests.spark.conftest import BUNDLED_MODEL


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    return lines[0]


def test_churn_starts_without_pyspark() -> None:
    code = "import sys, churn.clients.cli; assert 'pyspark' not in sys.modules, 'pyspark imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_model_that_fails_its_checksum_is_refused(book: Path, tmp_path: Path) -> None:
    tampered = tmp_path / BUNDLED_MODEL.name
    shutil.copyfile(BUNDLED_MODEL, tampered)
    shutil.copyfile(
        BUNDLED_MODEL.with_suffix(".metadata.json"), tampered.with_suffix(".metadata.json")
    )
    with tampered.open("ab") as handle:
        handle.write(b"\0")
    result = run_churn(
        "batch", "score", str(book), "--out", str(tmp_path / "out"), "--model", str(tampered)
    )
    assert result.returncode == 1
    assert "Refusing to load churn_prediction_model_v1_0.joblib" in _one_line_error(result.stderr)
    assert not (tmp_path / "out").exists()


def test_missing_java_is_one_line(book: Path, tmp_path: Path) -> None:
    result = run_churn(
        "batch", "score", str(book), "--out", str(tmp_path / "out"),
        "--model", str(BUNDLED_MODEL),
        env={"PATH": str(tmp_path), "JAVA_HOME": ""},
    )  # fmt: skip
    assert result.returncode == 1
    assert "No Java found" in _one_line_error(result.stderr)
    assert "default-jre-headless" in result.stderr


def test_a_bad_conf_is_a_usage_error(book: Path, tmp_path: Path) -> None:
    result = run_churn("batch", "score", str(book), "--out", str(tmp_path), "--conf", "nokey")
    assert result.returncode == 2
    assert "is not KEY=VALUE" in result.stderr
