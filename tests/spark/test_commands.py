"""`churn batch` from the command line: failures before Spark starts are one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from tests.conftest import run_churn, wait_until
from tests.spark.conftest import BUNDLED_MODEL, REJECTED_ROWS, ROWS_IN


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


def _javas() -> set[int]:
    return {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "java"}


def test_a_run_on_the_stored_model_ends_with_its_jvm(
    book: Path, bundled_store: Path, tmp_path: Path
) -> None:
    """The default model, from the store as `make setup` imports it; the command leaves
    its JVM to stop Spark, and the JVM ends by itself once the command has."""
    before = _javas()
    out = tmp_path / "out"
    result = run_churn("batch", "score", str(book), "--out", str(out),
                       env={"BENTOML_HOME": str(bundled_store)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    scored = ROWS_IN - len(REJECTED_ROWS)
    assert result.stdout.startswith(f"{ROWS_IN} rows: {scored} scored, {len(REJECTED_ROWS)} ")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["tag"].startswith("churn_model:")
    # Spark's log is off by default: not reset to WARN by pyspark's gateway, as it was.
    assert "Setting default log level" not in result.stderr
    assert " WARN " not in result.stderr
    wait_until(lambda: not (_javas() - before), "the command's JVM to end", timeout=60)
