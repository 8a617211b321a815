"""`churn batch` from the command line: failures before Spark starts are one line, and a
run on the store's model, as `make setup` leaves it, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import run_churn
from tests.spark.conftest import REJECTED_ROWS, ROWS_IN


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    return lines[0]


def test_churn_starts_without_pyspark() -> None:
    code = (
        "import sys, churn.workflows.cli; assert 'pyspark' not in sys.modules, 'pyspark imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_model_file_that_fails_its_checksum_is_refused(
    book: Path, model_file: tuple[Path, str], tmp_path: Path
) -> None:
    path, digest = model_file
    tampered = tmp_path / "model.ubj"
    tampered.write_bytes(path.read_bytes() + b"\0")
    result = run_churn(
        "batch", "score", str(book), "--out", str(tmp_path / "out"),
        "--model", str(tampered), "--model-sha256", digest,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"Refusing to load {tampered}" in _one_line_error(result.stderr)
    assert not (tmp_path / "out").exists()


def test_missing_java_is_one_line(book: Path, model_file: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = model_file
    result = run_churn(
        "batch", "score", str(book), "--out", str(tmp_path / "out"),
        "--model", str(path), "--model-sha256", digest,
        env={"PATH": str(tmp_path), "JAVA_HOME": ""},
    )  # fmt: skip
    assert result.returncode == 1
    assert "No Java found" in _one_line_error(result.stderr)
    assert "default-jre-headless" in result.stderr


def test_usage_errors(book: Path, tmp_path: Path) -> None:
    result = run_churn("batch", "score", str(book), "--out", str(tmp_path), "--conf", "nokey")
    assert result.returncode == 2
    assert "is not KEY=VALUE" in result.stderr
    result = run_churn("batch", "score", str(book), "--out", str(tmp_path), "--model", "m.ubj")
    assert "--model and --model-sha256 go together" in _one_line_error(result.stderr)
    result = run_churn("batch", "score", "book.data", "--out", str(tmp_path), "--model-tag", "x")
    assert "Add --format csv or --format parquet" in _one_line_error(result.stderr)


def test_score_and_call_list_on_the_stored_model(
    book: Path, bundled_store: Path, tmp_path: Path
) -> None:
    """The default model, from the store as `make setup` imports it, as a user runs it."""
    out = tmp_path / "out"
    env = {"BENTOML_HOME": str(bundled_store)}
    result = run_churn("batch", "score", str(book), "--out", str(out), "--run-id", "2026-11-29",
                       "--master", "local[2]", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    scored = ROWS_IN - len(REJECTED_ROWS)
    assert result.stdout.startswith(f"{ROWS_IN} rows: {scored} scored, {len(REJECTED_ROWS)} ")
    assert "churn_model:" in result.stdout
    listed = run_churn("batch", "call-list", str(out), "--top", "3", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("3 customers to call, run 2026-11-29")
    assert list((out / "_call_list" / "run=2026-11-29").glob("part-*.csv"))
