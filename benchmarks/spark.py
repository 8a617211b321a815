"""Spark's cost as a cluster pays it: start-up apart from the marginal cost per row.

    make bench-spark                     # = .venv/bin/python -m benchmarks.spark
    .venv/bin/python -m benchmarks.spark --rows 1000000,10000000 --only spark,file
    .venv/bin/python -m benchmarks.spark --rows 1e5,1e6 --runs spark-local[1]:parquet,file:csv

For two sizes of a generated book (default 1M and 10M rows, synthetic customers in the
bank layout, as CSV and as Parquet with 100,000-row row groups, as a bank's tables are
written, so that Spark splits a file into tasks for every core; kept in build/bench-spark/),
each run a process tree of its own, one after another (`--runs` keeps some of them):

- **spark**: `churn batch score FILE --out DIR --master local[N] --model F
  --model-sha256 D`, as a user runs it (JVM start included), with the model file
  exported from the store; Parquet and CSV on local[2], Parquet on local[1] too;
- **floor**: Spark alone on local[1]: the book read as the job reads it and the same
  table written as the job writes it, each row's answer made up by Spark's own
  expressions, no Python: the least any Python scoring pass on Spark can cost;
- **file**: `churn.scoring.files.score_file`, the single-process scorer behind
  /v2/predict-file, on the CSV (it reads CSV only).

Each run is confined to its cores (`taskset`; `--no-pin` lifts it): local[N] and its
Python workers to N cores, the file scorer to one, as an executor's container confines
an executor and its Python workers on a cluster. Unconfined, local[1]'s JVM and its
Python worker would use both of this machine's cores, and the single process its
reading and writing threads' second core: "per core" would not be per core.

From the two sizes: the marginal cost, (t(10M) - t(1M)) / 9M rows, as rows per second
per core (over N cores; the file scorer: one) and per CPU-second of the
whole tree (steadier on a shared machine); the fixed start-up, t(1M) less 1M rows at
the marginal rate; scaling local[1] -> local[2] on Parquet; the driver's Python memory
at 1M and 10M, and the executors' peak (in local mode the driver's and the executor's
JVM are one process; the executors' Python workers apart). Figures go to
build/bench-spark/results.json. The machine is shared: the load average is printed
with each run; read the ratios, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
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
ROW_GROUP = 100_000  # a Parquet split ends at a row group: several per core's share
MIB = 1 << 20
PLAN = (
    ("spark-local[2]", "parquet"),
    ("spark-local[1]", "parquet"),
    ("spark-local[2]", "csv"),
    ("floor-local[1]", "parquet"),
    ("file", "csv"),
)


@dataclass
class Result:
    method: str  # spark-local[N], floor-local[N] (Spark alone) or file
    rows: int
    format: str
    seconds: float
    cpu_seconds: float
    peak_mib: dict[str, float] = field(default_factory=dict)
    cpu_by_role: dict[str, float] = field(default_factory=dict)
    load: float = 0.0  # the 1-minute load average when the run ended
    ok: bool = True


def data_files(rows: int) -> dict[str, Path]:
    """The generated book as CSV and as Parquet (100k-row row groups), made once."""
    BUILD.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": BUILD / f"book-{rows}.csv",
        "parquet": BUILD / f"book-{rows}-rg{ROW_GROUP}.parquet",
    }
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
            writer.write_table(table, row_group_size=ROW_GROUP)
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
    return "executor python"


def one_process(_: psutil.Process, __: int) -> str:
    return "process"


def cores_of(method: str) -> int:
    """The cores a method is given: local[N]'s N, one for the single-process scorer."""
    return int(method.split("[")[1].rstrip("]")) if "[" in method else 1


def pinned(command: list[str], method: str, pin: bool) -> list[str]:
    """The command confined to its cores (its JVM and Python workers too, which inherit
    the affinity), as an executor's container confines them on a cluster."""
    if not pin:
        return command
    return ["taskset", "--cpu-list", f"0-{cores_of(method) - 1}", *command]


def run(command: list[str], classify: Callable[[psutil.Process, int], str]) -> tuple[Result, str]:
    """The command's run (time, CPU and memory by role) and what it printed."""
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
    roles = sampler.cpu_by_role()
    cpu = round(sum(roles.values()), 1)
    load = round(os.getloadavg()[0], 1)
    return Result("", 0, "", round(seconds, 2), cpu, peaks, roles, load), out


FILE_SCORER = """
import sys
from pathlib import Path
from churn.model.artifact import ModelMetadata, metadata_path_for
from churn.model.booster import TreeModel
from churn.model.store import LoadedModel
from churn.scoring.files import score_file
from churn.scoring.predictor import ChurnPredictor
from churn.spark.model import read
model = read(None, sys.argv[1], sys.argv[2])
tree = TreeModel.from_bytes(model.data)
metadata = ModelMetadata.read(metadata_path_for(Path(sys.argv[5])))
predictor = ChurnPredictor(LoadedModel(tree, metadata, model.tag))
print(score_file(predictor, Path(sys.argv[3]), Path(sys.argv[4]), max_rows=10**12).rows_in)
"""


# Spark alone: the book read as the job reads it and the same table (columns, types,
# partition) written as the job writes it, each row's answer made up by Spark's own
# expressions, with no Python pass: what no Python scoring on Spark can beat.
FLOOR_JOB = """
import sys
from pyspark.sql import functions as F
from churn.spark.arrow_pass import FILE, INDEX, RESULT_DDL
from churn.spark.book import Source, read_book
from churn.spark.output import RUN, Sink, write_partition
from churn.spark.session import start
session = start(master=sys.argv[1], app_name="floor")
frame, _ = read_book(session.spark, Source.of(sys.argv[2], None))
chance = F.rand(7)
made_up = {
    "source_file": F.col(FILE), "row": F.col(INDEX) + 1, "status": F.lit("scored"),
    "reasons": F.lit(None), "churn_probability": chance,
    "prediction": F.when(chance >= 0.5, "churn").otherwise("stay"),
    "risk_band": F.when(chance >= 0.7, "high").when(chance >= 0.3, "medium").otherwise("low"),
    "model_version": F.lit("1.0"), "scored_at": F.current_timestamp(), "job_id": F.lit("0" * 32),
}
fields = session.spark.createDataFrame([], RESULT_DDL).schema.fields
table = frame.select(
    *[made_up.get(f.name, F.col(f.name)).cast(f.dataType).alias(f.name) for f in fields],
    F.lit("bench").alias(RUN),
)
write_partition(session.spark, table, Sink(sys.argv[3], table=False))
session.stop()
"""


def export_model() -> tuple[Path, str]:
    subprocess.run([str(BIN / "churn"), "import-model", str(MODEL)], check=True)
    path = BUILD / "churn-model.ubj"
    done = subprocess.run(
        [str(BIN / "churn"), "batch", "export-model", "--out", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return path, done.stdout.split()[0]


def measure(
    method: str,
    rows: int,
    kind: str,
    source: Path,
    model: tuple[Path, str],
    conf: list[str],
    *,
    pin: bool,
) -> Result:
    out = BUILD / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if method.startswith("floor"):
        result, _ = run(
            pinned([sys.executable, "-c", FLOOR_JOB, method.removeprefix("floor-"), str(source),
                    str(out / "dir")], method, pin),
            spark_roles,
        )  # fmt: skip
        parts = (out / "dir" / "run=bench").glob("*.parquet")
        counted = sum(pq.read_metadata(part).num_rows for part in parts)
    elif method.startswith("spark"):
        master = method.removeprefix("spark-")
        result, _ = run(
            pinned([str(BIN / "churn"), "batch", "score", str(source), "--out", str(out / "dir"),
                    "--master", master, "--run-id", "bench", "--model", str(model[0]),
                    "--model-sha256", model[1], *[a for c in conf for a in ("--conf", c)]],
                   method, pin),
            spark_roles,
        )  # fmt: skip
        found = list((out / "dir" / "_summary" / "run=bench").glob("*.json"))
        counted = json.loads(json.loads(found[0].read_text())["summary"])["rows_in"]
    else:
        result, printed = run(
            pinned([sys.executable, "-c", FILE_SCORER, str(model[0]), model[1], str(source),
                    str(out / "result.csv"), str(MODEL)], method, pin),
            one_process,
        )  # fmt: skip
        counted = int(printed.split()[-1])  # the scorer's rows_in
    shutil.rmtree(out, ignore_errors=True)
    result.method, result.rows, result.format = method, rows, kind
    result.ok = counted == rows
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000000,10000000", help="two comma-separated sizes")
    parser.add_argument("--only", default="spark,floor,file")
    parser.add_argument(
        "--runs", default=",".join(f"{m}:{k}" for m, k in PLAN), metavar="METHOD:FORMAT,...",
        help="which of the runs --only keeps, such as spark-local[1]:parquet,file:csv",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=BUILD / "results.json")
    parser.add_argument(
        "--conf", action="append", default=[], metavar="KEY=VALUE",
        help="passed to each Spark run, as a user passes spark-submit --conf",
    )  # fmt: skip
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false",
        help="let every run use all the machine's cores (by default each is confined to its "
        "own: local[N] to N, the file scorer to one)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        parser.error("--pin needs 2 cores; use --no-pin")
    print("cores: " + ("each run confined to its own (taskset)" if args.pin else "unconfined"))
    small, large = (int(float(size)) for size in args.rows.split(","))
    model = export_model()
    wanted = {tuple(run.split(":", 1)) for run in args.runs.split(",")}
    plan = [
        (method, kind)
        for method, kind in PLAN
        if (method, kind) in wanted and method.split("-")[0] in args.only
    ]
    results: list[Result] = []
    for method, kind in plan:
        for rows in (small, large):
            result = measure(
                method, rows, kind, data_files(rows)[kind], model, args.conf, pin=args.pin
            )
            results.append(result)
            print(_line(result), flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    _report(results, small, large)
    return 0 if all(result.ok for result in results) else 1


def _line(r: Result) -> str:
    memory = ", ".join(f"{role} {mib:,.0f}" for role, mib in sorted(r.peak_mib.items()))
    cpu = ", ".join(f"{role} {seconds:,.1f}" for role, seconds in sorted(r.cpu_by_role.items()))
    return (
        f"{r.method:15} {r.format:8} {r.rows:>11,} rows  {r.seconds:8.1f} s  "
        f"CPU {r.cpu_seconds:7.1f} s ({cpu})  load {r.load:4.1f}  peak MiB: {memory}"
        + ("" if r.ok else "  ROWS MISSING")
    )


def _report(results: list[Result], small: int, large: int) -> None:
    def find(method: str, rows: int, kind: str) -> Result | None:
        return next(
            (r for r in results if (r.method, r.rows, r.format) == (method, rows, kind)), None
        )

    extra = large - small
    marginal: dict[tuple[str, str], tuple[float, float]] = {}
    print(f"\nmarginal cost from {small:,} to {large:,} rows")
    for method, kind in {(r.method, r.format) for r in results}:
        a, b = find(method, small, kind), find(method, large, kind)
        if a is None or b is None or b.cpu_seconds <= a.cpu_seconds:
            continue
        cores = cores_of(method)
        per_cpu = extra / (b.cpu_seconds - a.cpu_seconds)
        if b.seconds > a.seconds:
            per_core = extra / (b.seconds - a.seconds) / cores
            startup = a.seconds - small / (extra / (b.seconds - a.seconds))
            wall = f"{per_core:>10,.0f} rows/s per core  fixed start-up {startup:5.1f} s"
        else:  # the larger run was no slower: wall time is noise here (a loaded machine)
            per_core, wall = float("nan"), "wall times are noise"
        marginal[method, kind] = per_core, per_cpu
        print(f"  {method:15} {kind:8} {per_cpu:>10,.0f} rows/CPU-s  {wall}")
        roles = sorted(set(a.cpu_by_role) | set(b.cpu_by_role))
        per_role = {
            role: (b.cpu_by_role.get(role, 0) - a.cpu_by_role.get(role, 0)) / extra * 1e6
            for role in roles
        }
        print("      CPU-s per 1M rows: " + ", ".join(f"{k} {v:.2f}" for k, v in per_role.items()))
        driver = (b.peak_mib.get("driver python", 0), a.peak_mib.get("driver python", 0))
        if "[" in method:
            print(f"      driver Python {driver[1]:,.0f} -> {driver[0]:,.0f} MiB; executors' peak: "
                  f"JVM {b.peak_mib.get('jvm (driver+executor)', 0):,.0f} MiB, Python workers "
                  f"{b.peak_mib.get('executor python', 0):,.0f} MiB")  # fmt: skip
    file = marginal.get(("file", "csv"))
    print("\ntargets (ratios from this run)")
    for method, kind in PLAN:
        spark = marginal.get((method, kind))
        if spark and file and method.startswith("spark"):
            print(f"  {kind}: Spark {method[6:]} per core / file scorer: {spark[0] / file[0]:.2f} "
                  f"(per CPU-s {spark[1] / file[1]:.2f}); target >= 0.5 on Parquet")  # fmt: skip
        elif spark and file and method.startswith("floor"):
            print(f"  {kind}: Spark alone {method[6:]}, no Python (the floor) / file scorer: "
                  f"{spark[0] / file[0]:.2f} (per CPU-s {spark[1] / file[1]:.2f})")  # fmt: skip
    one, two = (
        marginal.get(("spark-local[1]", "parquet")),
        marginal.get(("spark-local[2]", "parquet")),
    )
    if one and two:
        print(
            f"  scaling local[1] -> local[2] (Parquet): {2 * two[0] / one[0]:.2f}x (target >= 1.7)"
        )


if __name__ == "__main__":
    sys.exit(main())
