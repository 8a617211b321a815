"""Spark local[2] against the service's file scorer and the old app's pandas approach.

    make bench-spark                     # = .venv/bin/python -m benchmarks.spark
    .venv/bin/python -m benchmarks.spark --rows 1000000 --only spark,file

For each size (default 1M and 10M generated rows) and format (CSV, Parquet), three
ways of scoring the whole file, each in a process of its own, one after another:

- **spark**: `churn batch score INPUT --master local[2]`, as a user runs it (JVM start
  included), into scored/ and rejected/ Parquet, with the service's model from the
  BentoML store, imported first as `make setup` does (`--spark-model file`: with
  `--model` the joblib file, whose booster the driver then derives from the pickle).
  A machine's first run also writes the JVM's class-data archive
  (`churn.spark.session.class_archive`); if it is missing, a run on a 1,000-row book
  writes it first, unmeasured, so every size is measured as every run after the first;
- **file**: `churn.scoring.files.score_file`, the single-process scorer behind
  /v2/predict-file, into a results CSV (CSV input only: the service reads CSV);
- **pandas**: the old app's /v1/customerbatch, `pd.read_csv` (or `read_parquet`), the
  pipeline's `predict` on the whole frame, the id -> label map as JSON.

Rows/s are rows in over wall-clock seconds of the whole command. A thread samples the
resident memory of each process tree every 100 ms; for Spark it is split into the
driver (the `churn` Python process), the JVM (in local mode the driver's and the
executor's JVM are one) and the executors' Python workers. The ratios the issue sets
targets for are printed at the end, measured in the same run. Figures go to
build/bench-spark/results.json; the generated files are kept in build/bench-spark/
and reused. Timings on a shared machine are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from churn.model.synth import synthesize

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "bench-spark"
BIN = Path(sys.executable).parent
MODEL = ROOT / "models" / "churn_prediction_model_v1_0.joblib"
CHUNK = 1_000_000
MIB = 1 << 20


@dataclass
class Result:
    method: str
    rows: int
    format: str
    seconds: float
    rows_per_second: float
    cpu_seconds: float  # of the whole process tree: steadier than wall time on a busy machine
    peak_mib: dict[str, float] = field(default_factory=dict)
    cpu_by_role: dict[str, float] = field(default_factory=dict)
    ok: bool = True
    note: str = ""

    def cpu_split(self) -> str:
        return ", ".join(f"{role} {seconds:.1f}" for role, seconds in self.cpu_by_role.items())

    def memory(self) -> str:
        parts = sorted(self.peak_mib.items(), key=lambda item: item[0] == "total")
        return ", ".join(f"{role} {mib:,.0f}" for role, mib in parts)


def data_files(rows: int) -> dict[str, Path]:
    """The generated book as CSV and as Parquet (1M-row row groups), made once."""
    BUILD.mkdir(parents=True, exist_ok=True)
    paths = {"csv": BUILD / f"book-{rows}.csv", "parquet": BUILD / f"book-{rows}.parquet"}
    if all(path.exists() for path in paths.values()):
        return paths
    partial = {kind: path.with_suffix(path.suffix + ".partial") for kind, path in paths.items()}
    writer: pq.ParquetWriter | None = None
    with partial["csv"].open("wb") as csv_out:
        for start in range(0, rows, CHUNK):
            frame = synthesize(min(CHUNK, rows - start), seed=start // CHUNK)
            frame["RowNumber"] += start
            table = pa.Table.from_pandas(frame, preserve_index=False)
            options = pacsv.WriteOptions(include_header=start == 0)
            pacsv.write_csv(table, csv_out, write_options=options)
            if writer is None:
                writer = pq.ParquetWriter(partial["parquet"], table.schema)
            writer.write_table(table, row_group_size=CHUNK)
    assert writer is not None
    writer.close()
    for kind, path in paths.items():
        partial[kind].rename(path)
    return paths


class TreeSampler(threading.Thread):
    """Peak resident memory of a process tree, by the part each process plays."""

    def __init__(self, root: int, classify: Callable[[psutil.Process, int], str]) -> None:
        super().__init__(daemon=True)
        self.root, self.classify = root, classify
        self.peaks: dict[str, float] = {}
        self.cpu: dict[int, tuple[str, float]] = {}  # role, last user + system seconds seen
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                parent = psutil.Process(self.root)
                processes = [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            totals: dict[str, float] = {}
            for process in processes:
                try:
                    role = self.classify(process, self.root)
                    totals[role] = totals.get(role, 0) + process.memory_info().rss / MIB
                    times = process.cpu_times()
                    self.cpu[process.pid] = role, times.user + times.system
                except psutil.NoSuchProcess:
                    continue
            totals["total"] = sum(totals.values())
            for role, value in totals.items():
                self.peaks[role] = max(self.peaks.get(role, 0), value)
            self.done.wait(0.1)

    def cpu_by_role(self) -> dict[str, float]:
        roles: dict[str, float] = {}
        for role, seconds in self.cpu.values():
            roles[role] = round(roles.get(role, 0) + seconds, 1)
        return roles


def spark_roles(process: psutil.Process, root: int) -> str:
    if process.pid == root:
        return "driver python"
    if process.name() == "java":
        return "jvm (driver+executor)"
    return "executor python workers"


def run(
    command: list[str], classify: Callable[[psutil.Process, int], str]
) -> tuple[float, dict[str, float], dict[str, float], str]:
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = TreeSampler(process.pid, classify)
    sampler.start()
    out, err = process.communicate()
    seconds = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:4])} ... exited {process.returncode}: {err[-2000:]}"
        )
    peaks = {k: round(v, 1) for k, v in sampler.peaks.items()}
    return seconds, sampler.cpu_by_role(), peaks, out.strip()


FILE_SCORER = """
import sys
from pathlib import Path
from churn.scoring.files import score_file
from churn.scoring.predictor import ChurnPredictor
from churn.spark.model import resolve
predictor = ChurnPredictor(resolve(sys.argv[1]).loaded)
summary = score_file(predictor, Path(sys.argv[2]), Path(sys.argv[3]), max_rows=10**12)
print(summary.rows_in)
"""

OLD_APP = """
import json, sys
import pandas as pd
from benchmarks.baseline_app import load_model
from churn.record.schema import FEATURE_NAMES
from pathlib import Path
model = load_model(Path(sys.argv[1]))
source = sys.argv[2]
df = pd.read_parquet(source) if source.endswith(".parquet") else pd.read_csv(source)
preds = model.predict(df[list(FEATURE_NAMES)])
labels = ["Churn" if p else "Not Churn" for p in preds]
Path(sys.argv[3]).write_text(json.dumps(dict(zip(df.CustomerId.astype(str), labels, strict=True))))
print(len(df))
"""


def one_process(_: psutil.Process, __: int) -> str:
    return "process"


def measure(method: str, rows: int, kind: str, source: Path, model: str = "store") -> Result:
    out = BUILD / f"out-{method}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if method == "spark":
        command = [str(BIN / "churn"), "batch", "score", str(source), "--out", str(out / "dir"),
                   "--master", "local[2]"]  # fmt: skip
        if model == "file":
            command += ["--model", str(MODEL)]
        seconds, cpu, peaks, _ = run(command, spark_roles)
        summary = json.loads((out / "dir" / "summary.json").read_text())
        counted = summary["rows_in"]
        note = f"job {summary['seconds']:.1f} s of it"
    else:
        script = FILE_SCORER if method == "file" else OLD_APP
        command = [sys.executable, "-c", script, str(MODEL), str(source), str(out / "result")]
        seconds, cpu, peaks, printed = run(command, one_process)
        counted, note = int(printed.splitlines()[-1]), ""
    shutil.rmtree(out, ignore_errors=True)
    ok = counted == rows
    return Result(
        method, rows, kind, round(seconds, 2), round(rows / seconds),
        round(sum(cpu.values()), 1), peaks, cpu, ok, note,
    )  # fmt: skip


def warm_class_archive() -> None:
    """The JVM's class-data archive, written by one small run if this machine has none."""
    from churn.spark.session import class_archive, find_java

    if class_archive(find_java()).is_file():
        return
    small = BUILD / "book-1000.csv"
    if not small.exists():
        BUILD.mkdir(parents=True, exist_ok=True)
        pacsv.write_csv(pa.Table.from_pandas(synthesize(1000, seed=0), preserve_index=False), small)
    started = time.monotonic()
    measure("spark", 1000, "csv", small)
    seconds = time.monotonic() - started
    print(f"(wrote the JVM's class-data archive: a first run of {seconds:.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes")
    parser.add_argument("--only", default="spark,file,pandas")
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--json", type=Path, default=BUILD / "results.json")
    parser.add_argument(
        "--spark-model", choices=("store", "file"), default="store",
        help="Spark's model: the service's, from the store (default), or the joblib file",
    )  # fmt: skip
    args = parser.parse_args()
    sizes = [int(size) for size in args.rows.split(",")]
    methods = [m for m in ("spark", "file", "pandas") if m in args.only.split(",")]
    results: list[Result] = []
    if "spark" in methods:
        if args.spark_model == "store":
            subprocess.run([str(BIN / "churn"), "import-model", str(MODEL)], check=True)
        warm_class_archive()
    for rows in sizes:
        files = data_files(rows)
        for kind in args.formats.split(","):
            for method in methods:
                if method == "file" and kind != "csv":
                    continue
                result = measure(method, rows, kind, files[kind], args.spark_model)
                results.append(result)
                print(_line(result), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    _targets(results)
    return 0 if all(result.ok for result in results) else 1


def _line(r: Result) -> str:
    return (
        f"{r.method:7} {r.format:8} {r.rows:>11,} rows  {r.seconds:8.1f} s  "
        f"{r.rows_per_second:>9,} rows/s  CPU {r.cpu_seconds:7.1f} s"
        + (f" ({r.cpu_split()})" if len(r.cpu_by_role) > 1 else "")
        + f"  peak MiB: {r.memory()}"
        + (f"  ({r.note})" if r.note else "")
        + ("" if r.ok else "  ROWS MISSING")
    )


def _targets(results: list[Result]) -> None:
    def find(method: str, rows: int, kind: str) -> Result | None:
        return next(
            (r for r in results if (r.method, r.rows, r.format) == (method, rows, kind)), None
        )

    sizes = sorted({r.rows for r in results})
    print("\ntargets (ratios from this run)")
    for rows in sizes:
        spark, file = find("spark", rows, "csv"), find("file", rows, "csv")
        if spark and file:
            ratio = spark.rows_per_second / file.rows_per_second
            per_cpu = (file.cpu_seconds / spark.cpu_seconds) if spark.cpu_seconds else 0
            print(
                f"  {rows:,} CSV rows: Spark local[2] / file scorer throughput "
                f"{ratio:.2f} (target >= 0.5); rows per CPU-second {per_cpu:.2f}"
            )
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for kind in ("csv", "parquet"):
            a, b = find("spark", small, kind), find("spark", large, kind)
            if a and b:
                growth = b.peak_mib.get("driver python", 0) / max(
                    a.peak_mib.get("driver python", 1), 1
                )
                jvm = b.peak_mib.get("jvm (driver+executor)", 0) / max(
                    a.peak_mib.get("jvm (driver+executor)", 1), 1
                )
                print(
                    f"  {kind}: {large:,} / {small:,} rows: time x{b.seconds / a.seconds:.2f} "
                    f"(target <= {1.1 * large / small:.0f}x), driver Python memory "
                    f"x{growth:.2f}, JVM x{jvm:.2f} (target: flat)"
                )


if __name__ == "__main__":
    sys.exit(main())
