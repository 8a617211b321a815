"""A Python worker killed in the middle of the pass: Spark runs its task again, and the
run's rows are the same as a run without the kill (one row per record, none twice)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pyarrow.parquet as pq
import pytest

from churn.model.synth import write_synthetic_csv
from tests.conftest import run_churn

ROWS = 300_000


def _kill_a_worker(parent: int, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL a Python worker forked by pyspark's daemon under `parent` while it works
    (its CPU time grew since the last look): an idle, reused worker holds no task."""
    seen: dict[int, float] = {}
    while not stop.is_set() and not killed:
        try:
            processes = psutil.Process(parent).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for process in processes:
            try:
                forked = process.parent()
                if forked is None or "pyspark.daemon" not in " ".join(forked.cmdline()):
                    continue
                used = sum(process.cpu_times()[:2])
                if used - seen.setdefault(process.pid, used) > 0.02:
                    os.kill(process.pid, signal.SIGKILL)
                    killed.append(process.pid)
                    return
            except (psutil.NoSuchProcess, ProcessLookupError):
                continue
        stop.wait(0.05)


def _rows(folder: Path) -> list[dict[str, object]]:
    table = pq.read_table(folder / "run=r1").drop_columns(["job_id", "scored_at"])
    rows: list[dict[str, object]] = table.to_pylist()
    return sorted(rows, key=repr)  # rows of later splits have no number: every column


@pytest.mark.slow
def test_a_killed_worker_is_retried_with_the_same_output(
    model_file: tuple[Path, str], tmp_path: Path
) -> None:
    book = write_synthetic_csv(tmp_path / "book.csv", ROWS, seed=5)
    model, digest = model_file
    common = ["--run-id", "r1", "--model", str(model), "--model-sha256", digest,
              "--conf", "spark.sql.files.maxPartitionBytes=8m"]  # fmt: skip
    clean = run_churn("batch", "score", str(book), "--out", str(tmp_path / "clean"),
                      "--master", "local[2]", *common)  # fmt: skip
    assert clean.returncode == 0, clean.stderr

    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_a_worker, args=(os.getpid(), killed, stop))
    watcher.start()
    try:
        # local[2,4]: each task may be tried four times, as on a cluster.
        retried = run_churn("batch", "score", str(book), "--out", str(tmp_path / "retried"),
                            "--master", "local[2,4]", *common)  # fmt: skip
    finally:
        stop.set()
        watcher.join()
    assert retried.returncode == 0, retried.stderr
    assert killed, "no Python worker was running to kill"
    assert "Lost task" in retried.stderr  # Spark saw the task fail, and ran it again
    assert retried.stdout.split(" in ")[0] == clean.stdout.split(" in ")[0]
    assert _rows(tmp_path / "retried") == _rows(tmp_path / "clean")
