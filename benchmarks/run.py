"""The issue-3 benchmark: the Bento service against the old Flask app, in one run.

    .venv/bin/python -m benchmarks.run [--seconds 15] [--rows 1000000] [--only single,csv]

Starts both servers on free ports of 127.0.0.1 (the baseline under gunicorn with 4
sync workers, the Bento with `bentoml serve` on a throw-away BENTOML_HOME holding the
bundled model), drives them with `wrk` and `curl`, stops them by process group, and
prints absolute figures with the ratios the issue asks for. Absolute times drift on a
shared machine; the ratios, measured minutes apart in the same run, are what to read.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx
import numpy as np
import pandas as pd
import psutil  # type: ignore[import-untyped]

from churn.record.schema import FEATURE_NAMES

# The example customer of the old service's documentation, as the tests send it.
from tests.factories import EXAMPLE_CUSTOMER

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
CACHE = ROOT / "build" / "bench"
MODEL = ROOT / "models" / "churn_prediction_model_v1_0.joblib"
LUA = Path(__file__).with_name("request.lua")
GUNICORN_WORKERS = 4
SAMPLE_EVERY = 0.05  # seconds between RSS samples of a server's process tree
MIB = 1 << 20

CUSTOMER_BODY = json.dumps(EXAMPLE_CUSTOMER)
PREDICT_BODY = json.dumps({"customers": [EXAMPLE_CUSTOMER]})
GROUPS = ("single", "batchable", "csv", "drift")
# The same service with live drift profiling off (churn.monitoring.live), for its cost.
NO_DRIFT = "bento-no-drift"
NO_DRIFT_CUSTOMER = f"{NO_DRIFT} POST /v1/customer (drift profiling off)"


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def rss(self) -> int:
        """Resident memory of the server's whole process tree, in bytes."""
        return int(self._tree_sum(lambda proc: proc.memory_info().rss))

    def cpu_seconds(self) -> float:
        """User and system CPU the server's whole process tree has used so far, in seconds."""
        return self._tree_sum(lambda proc: sum(proc.cpu_times()[:2]))

    def _tree_sum(self, measure: Callable[[psutil.Process], float]) -> float:
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0.0
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += measure(proc)
        return total

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it is still there after 20 s."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start(name: str, command: Sequence[str], env: dict[str, str], logs: Path) -> Server:
    port = free_port()
    log = logs / f"{name}.log"
    argv = [part.replace("{port}", str(port)) for part in command]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    return Server(name, port, process, log)


def wait_until_ready(server: Server, probe: Callable[[httpx.Client], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if probe(client):
                    return
            time.sleep(0.25)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s:\n{server.log_tail()}")


class Ticker:
    """Calls `tick()` every `every` seconds in a daemon thread while inside `with`."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self.every):
            self.tick()

    def tick(self) -> None:
        raise NotImplementedError


class MemoryWatch(Ticker):
    """Samples each server's tree RSS every 50 ms in a thread; `window()` gives peaks."""

    def __init__(self, servers: Sequence[Server]) -> None:
        super().__init__(SAMPLE_EVERY)
        self.servers = list(servers)
        self.peaks: dict[str, int] = dict.fromkeys((s.name for s in servers), 0)
        self.overall = dict(self.peaks)
        self._lock = threading.Lock()

    def tick(self) -> None:
        for server in self.servers:
            rss = server.rss()
            with self._lock:
                self.peaks[server.name] = max(self.peaks[server.name], rss)
                self.overall[server.name] = max(self.overall[server.name], rss)

    @contextlib.contextmanager
    def window(self, name: str, into: dict[str, int]) -> Iterator[None]:
        """Record into `into["peak_rss"]` the peak RSS of server `name` while inside."""
        with self._lock:
            self.peaks[name] = 0
        try:
            yield
        finally:
            time.sleep(SAMPLE_EVERY * 2)
            with self._lock:
                into["peak_rss"] = self.peaks[name]


# --------------------------------------------------------------------------- wrk


@dataclass
class Load:
    server: str
    method: str
    path: str
    connections: int
    body: str = ""
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.server} {self.method} {self.path}{self.note}"


@dataclass
class LoadResult:
    label: str
    connections: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    peak_rss: int = 0
    round: int = 1
    # CPU per answered request, in µs: the server's process tree, and wrk's own.
    server_cpu_us: float | None = None
    wrk_cpu_us: float | None = None
    # The machine's 1-, 5- and 15-minute load averages as the run started (it is shared).
    load_average: list[float] | None = None


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(label: str, connections: int, text: str) -> LoadResult:
    """The figures of `wrk --latency` output; raises if the run produced none."""

    def latency(percent: int) -> float:
        found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        return float(found[1]) * _UNITS_MS[found[2]] if found else float("nan")

    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in ", text)
    if not rate or not total:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return LoadResult(
        label=label,
        connections=connections,
        requests=int(total[1]),
        rps=float(rate[1]),
        p50_ms=latency(50),
        p99_ms=latency(99),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def waited_cpu_seconds() -> float:
    """User and system CPU of this process's children that have been waited for (wrk, curl)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, load: Load, seconds: float, max_requests: int) -> str:
    env = {
        **os.environ,
        "BENCH_METHOD": load.method,
        "BENCH_BODY": load.body,
        "BENCH_MAX_REQUESTS": str(max_requests),
    }
    command = [
        "wrk", "--threads", "1", "--connections", str(load.connections),
        "--duration", f"{max(1, round(seconds))}s", "--timeout", "10s", "--latency",
        "--script", str(LUA), url,
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    return done.stdout


# --------------------------------------------------------------------------- CSV uploads


@dataclass
class Upload:
    label: str
    status: int
    seconds: float
    rows_answered: int
    peak_rss: int = 0
    differ_from_baseline: int | None = None
    round: int = 1
    load_average: list[float] | None = None  # as LoadResult's


def synthetic_csv(rows: int) -> Path:
    """The CSV of `rows` synthetic customers, generated once and cached in build/bench/."""
    path = CACHE / f"customers-{rows}.csv"
    if not path.is_file():
        partial = path.with_suffix(".partial.csv")
        print(f"generating {rows:,} synthetic customers into {path} (once)", flush=True)
        subprocess.run(
            [str(BIN / "churn"), "data", "synth", "--rows", str(rows), "--out", str(partial)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        partial.replace(path)
    return path


# The files scored, by layout: synthetic customers in the public data set's 14 columns,
# and the old notebook's own upload, `CustomerId` and the nine features (about 48 bytes
# a row, not 71), made of the public data set's customers.
LAYOUTS = ("bank", "notebook")
NOTEBOOK_COLUMNS = ("CustomerId", *FEATURE_NAMES)
PUBLIC_DATA = ROOT.parent / "shared" / "data" / "Churn_Modelling.csv"


def layout_csv(rows: int, layout: str, public: Path = PUBLIC_DATA) -> Path:
    """The CSV of `rows` customers in `layout`, generated once and cached in build/bench/.

    The notebook layout repeats the public data set's 10,000 customers, as pandas wrote
    them in the notebook, with ids renumbered so that each row is its own customer (the
    old app answers one label per id).
    """
    if layout == "bank":
        return synthetic_csv(rows)
    path = CACHE / f"customers-{layout}-public-{rows}.csv"
    if not path.is_file():
        if not public.is_file():
            raise SystemExit(f"The {layout} layout is made of {public}, which is absent.")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.csv")
        print(f"writing {rows:,} customers in the {layout} layout into {path} (once)", flush=True)
        customers = pd.read_csv(public, usecols=list(NOTEBOOK_COLUMNS))
        frame = customers.iloc[np.arange(rows) % len(customers)][list(NOTEBOOK_COLUMNS)]
        frame["CustomerId"] = 15_000_000 + np.arange(rows)
        frame.to_csv(partial, index=False)
        partial.replace(path)
    return path


def upload_label(name: str, path: str, layout: str) -> str:
    """`name POST path`, with the layout after it unless it is the public one."""
    return f"{name} POST {path}" + ("" if layout == "bank" else f" [{layout}]")


def post_file(url: str, csv: Path, out: Path) -> tuple[int, float]:
    """Upload `csv` as multipart field `file`, stream the answer to `out`; status, seconds."""
    command = [
        "curl", "-sS", "--max-time", "900", "-H", "Expect:", "-o", str(out),
        "-w", "%{http_code} %{time_total}", "-F", f"file=@{csv};type=text/csv", url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"curl {url} failed: {done.stderr.strip()}")
    status, seconds = done.stdout.split()
    return int(status), float(seconds)


def labels_of(answer: Path) -> dict[str, str]:
    """A /v1/customerbatch answer: {CustomerId: "Churn" | "Not Churn"}, or {} if not one."""
    try:
        parsed = json.loads(answer.read_bytes())
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def csv_rows(answer: Path) -> int:
    """Data rows of a CSV answer (lines after the header)."""
    with answer.open("rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


# --------------------------------------------------------------------------- the run


@dataclass
class Results:
    started_at: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    loads: dict[str, list[LoadResult]] = field(default_factory=dict)
    uploads: dict[str, list[Upload]] = field(default_factory=dict)
    server_peak_rss: dict[str, int] = field(default_factory=dict)
    server_rss_at_start: dict[str, int] = field(default_factory=dict)  # ready, before load
    server_rss_at_end: dict[str, int] = field(default_factory=dict)  # idle, before stopping
    failures: list[str] = field(default_factory=list)


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "memory_gib": round(psutil.virtual_memory().total / (1 << 30), 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "wrk": wrk_version(),
        "commit": service_revision(),
    }


def wrk_version() -> str:
    """What `wrk -v` says of itself; a correctness-only run needs no wrk."""
    if shutil.which("wrk") is None:
        return "not installed"
    return subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]


def service_revision() -> str:
    """The commit measured, with "+changes" if the service's sources differ from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--", "service.py", "churn"], capture_output=True, text=True
    )
    revision = head.stdout.strip() or "unknown"
    return f"{revision}+changes" if changed.stdout.strip() else revision


def check_tools() -> None:
    missing = [tool for tool in ("wrk", "curl") if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"benchmarks need {' and '.join(missing)} on PATH. On Debian or Ubuntu: "
            f"`sudo apt-get install -y {' '.join(missing)}` (macOS: `brew install wrk`)."
        )
    for tool in ("gunicorn", "bentoml", "churn"):
        if not (BIN / tool).exists():
            sys.exit(f"{BIN / tool} is missing; run `make sync` first.")


def baseline_ready(server: Server) -> Callable[[httpx.Client], bool]:
    def probe(client: httpx.Client) -> bool:
        answer = client.post(server.url("/v1/customer"), json=EXAMPLE_CUSTOMER)
        return answer.status_code == 200

    return probe


def bento_ready(server: Server) -> Callable[[httpx.Client], bool]:
    def probe(client: httpx.Client) -> bool:
        return client.get(server.url("/readyz")).status_code == 200

    return probe


def check_answer(url: str, load: Load) -> str | None:
    """One request before the load: why the route does not work, or None if it does."""
    try:
        answer = httpx.request(
            load.method, url, content=load.body or None,
            headers={"Content-Type": "application/json"} if load.body else None, timeout=30,
        )  # fmt: skip
    except httpx.HTTPError as error:
        return f"{load.label}: {error}"
    if answer.status_code != 200:
        return f"{load.label}: HTTP {answer.status_code} {answer.text[:300]}"
    if load.path == "/v1/customer" and answer.json() not in (
        {"Prediction": "churn"},
        {"Prediction": "not churn"},
    ):
        return f"{load.label}: unexpected answer {answer.text[:300]}"
    return None


def run_loads(
    loads: Sequence[Load], servers: dict[str, Server], watch: MemoryWatch,
    args: argparse.Namespace, results: Results,
) -> None:  # fmt: skip
    working = []
    for load in loads:
        problem = check_answer(servers[load.server].url(load.path), load)
        if problem:
            results.failures.append(problem)
            print(f"skipped, the route does not answer: {problem}", flush=True)
        else:
            working.append(load)
    for round_ in range(1, args.rounds + 1):
        for load in working:
            print(f"[round {round_}/{args.rounds}] {load.label} x{load.connections}", flush=True)
            measure_load(load, servers[load.server], watch, args, results, round_)


def measure_load(
    load: Load, server: Server, watch: MemoryWatch, args: argparse.Namespace,
    results: Results, round_: int, *, warmup: bool = True,
) -> None:  # fmt: skip
    """One wrk run of `load` (after an `args.warmup` one unless `warmup` is false), added
    to `results.loads` under its label, or to `results.failures`."""
    url = server.url(load.path)
    peak: dict[str, int] = {}
    load_average = [round(x, 2) for x in os.getloadavg()]
    try:
        if warmup and args.warmup > 0:
            run_wrk(url, load, args.warmup, args.max_requests)
        server_cpu, wrk_cpu = server.cpu_seconds(), waited_cpu_seconds()
        with watch.window(load.server, peak):
            text = run_wrk(url, load, args.seconds, args.max_requests)
        server_cpu = server.cpu_seconds() - server_cpu
        wrk_cpu = waited_cpu_seconds() - wrk_cpu
        result = parse_wrk(load.label, load.connections, text)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        results.failures.append(f"{load.label}: {error}")
        return
    result.peak_rss, result.round = peak["peak_rss"], round_
    result.load_average = load_average
    result.server_cpu_us = server_cpu / result.requests * 1e6
    result.wrk_cpu_us = wrk_cpu / result.requests * 1e6
    if result.requests >= args.max_requests:
        # wrk still divides by the whole duration: the rate would be too low.
        results.failures.append(f"{load.label}: hit --max-requests; req/s understated")
    results.loads.setdefault(load.label, []).append(result)


def run_uploads(
    servers: dict[str, Server], watch: MemoryWatch, args: argparse.Namespace,
    results: Results, scratch: Path,
) -> None:  # fmt: skip
    targets = [("baseline", "/v1/customerbatch")] if "baseline" in servers else []
    targets += [("bento", "/v2/predict-file"), ("bento", "/v1/customerbatch")]
    for layout in args.layouts:
        csv = layout_csv(args.rows, layout)
        for repeat in range(1, args.csv_repeats + 1):
            baseline_labels: dict[str, str] = {}
            for name, path in targets:
                label = upload_label(name, path, layout)
                print(
                    f"[upload {repeat}/{args.csv_repeats}] {label} ({args.rows:,} rows, "
                    f"{csv.stat().st_size / 1e6:.0f} MB)",
                    flush=True,
                )
                out = scratch / f"{name}-{path.strip('/').replace('/', '-')}.out"
                peak: dict[str, int] = {}
                load_average = [round(x, 2) for x in os.getloadavg()]
                try:
                    with watch.window(name, peak):
                        status, seconds = post_file(servers[name].url(path), csv, out)
                except RuntimeError as error:
                    results.failures.append(f"{label}: {error}")
                    continue
                upload = Upload(label, status, seconds, 0, peak["peak_rss"], round=repeat)
                upload.load_average = load_average
                if status == 200 and path == "/v2/predict-file":
                    upload.rows_answered = csv_rows(out)
                elif status == 200:
                    answered = labels_of(out)
                    upload.rows_answered = len(answered)
                    if name == "baseline":
                        baseline_labels = answered
                    elif baseline_labels:
                        upload.differ_from_baseline = sum(
                            baseline_labels.get(key) != value for key, value in answered.items()
                        )
                if status != 200 or upload.rows_answered != args.rows:
                    detail = out.read_bytes()[:300].decode(errors="replace") if out.exists() else ""
                    results.failures.append(
                        f"{label}: HTTP {status}, {upload.rows_answered:,} of {args.rows:,} rows "
                        f"answered {detail}"
                    )
                results.uploads.setdefault(label, []).append(upload)
                out.unlink(missing_ok=True)


def bento_environment(home: Path) -> dict[str, str]:
    # The CHURN_* settings pass through, but not API keys: the old app had none, and wrk
    # sends none.
    inherited = {k: v for k, v in os.environ.items() if k != "CHURN_API_KEYS"}
    return {
        **inherited,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "PYTHONUNBUFFERED": "1",
    }


# `bentoml serve` from the repository root; `start` fills in the free port.
BENTO_COMMAND = (
    str(BIN / "bentoml"), "serve", "service:ChurnService",
    "--host", "127.0.0.1", "--port", "{port}",
)  # fmt: skip


@contextlib.contextmanager
def throwaway_bento_home() -> Iterator[tuple[Path, dict[str, str]]]:
    """A scratch directory and the environment of a BENTOML_HOME in it holding the bundled
    model; both are removed on exit, so a run never touches your own model store."""
    with tempfile.TemporaryDirectory(prefix="churn-bench-") as tmp:
        scratch = Path(tmp)
        env = bento_environment(scratch / "bentoml")
        print("importing the bundled model into a throw-away BENTOML_HOME", flush=True)
        subprocess.run(
            [str(BIN / "churn"), "import-model", str(MODEL)],
            env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        yield scratch, env


def run(args: argparse.Namespace) -> Results:
    groups = set(args.only)
    results = Results(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine_info(),
        settings={k: v for k, v in vars(args).items() if k != "json"}
        | {"gunicorn_workers": GUNICORN_WORKERS},
    )
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with throwaway_bento_home() as (scratch, env):
        servers: dict[str, Server] = {}
        try:
            if groups & {"single", "csv"}:
                servers["baseline"] = start(
                    "baseline",
                    [
                        str(BIN / "gunicorn"), "--workers", str(GUNICORN_WORKERS),
                        "--worker-class", "sync", "--bind", "127.0.0.1:{port}",
                        "--timeout", "600", "--no-control-socket", "benchmarks.baseline_app:app",
                    ],
                    env, logs,
                )  # fmt: skip
            if "drift" in groups:
                # A store of its own: `bentoml serve` empties its home's metrics directory.
                home = scratch / "bentoml-no-drift"
                shutil.copytree(scratch / "bentoml", home)
                quiet = {**bento_environment(home), "CHURN_DRIFT_PROFILING": "false"}
                servers[NO_DRIFT] = start(NO_DRIFT, BENTO_COMMAND, quiet, logs)
            servers["bento"] = start("bento", BENTO_COMMAND, env, logs)
            for server in servers.values():
                probe = baseline_ready if server.name == "baseline" else bento_ready
                wait_until_ready(server, probe(server), args.start_timeout)
                print(f"{server.name} ready on port {server.port} (pid {server.process.pid})")
            results.server_rss_at_start = {name: s.rss() for name, s in servers.items()}
            with MemoryWatch(list(servers.values())) as watch:
                loads = []
                if "single" in groups:
                    loads += [
                        Load("baseline", "POST", "/v1/customer", 16, CUSTOMER_BODY),
                        Load("bento", "GET", "/livez", 16),
                        Load("bento", "POST", "/v1/customer", 16, CUSTOMER_BODY),
                    ]
                if "drift" in groups:
                    customer = Load("bento", "POST", "/v1/customer", 16, CUSTOMER_BODY)
                    loads += [] if "single" in groups else [customer]
                    loads.append(
                        Load(NO_DRIFT, "POST", "/v1/customer", 16, CUSTOMER_BODY,
                             " (drift profiling off)")
                    )  # fmt: skip
                if "batchable" in groups:
                    loads.append(
                        Load("bento", "POST", "/v2/predict", 64, PREDICT_BODY, " (1 customer)")
                    )
                run_loads(loads, servers, watch, args, results)
                if "csv" in groups:
                    run_uploads(servers, watch, args, results, scratch)
            results.server_peak_rss = dict(watch.overall)
            time.sleep(2)  # idle: what the servers keep after the load
            results.server_rss_at_end = {name: s.rss() for name, s in servers.items()}
        finally:
            for server in servers.values():
                server.stop()
    results.machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


# --------------------------------------------------------------------------- report


def median_load(runs: list[LoadResult]) -> LoadResult:
    return LoadResult(
        label=runs[0].label,
        connections=runs[0].connections,
        requests=sum(r.requests for r in runs),
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        non_2xx=sum(r.non_2xx for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
        peak_rss=max(r.peak_rss for r in runs),
        server_cpu_us=_median_of_known([r.server_cpu_us for r in runs]),
        wrk_cpu_us=_median_of_known([r.wrk_cpu_us for r in runs]),
    )


def _median_of_known(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


@dataclass
class Ratio:
    what: str
    target: float | None  # at least this; None: no target, for information
    values: list[float]  # one a round: both figures of a ratio come from the same round

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def cells(self) -> list[object]:
        median = self.median
        if median is None:
            return [self.what, "n/a", "", "", "n/a"]
        spread = f"{min(self.values):.2f}-{max(self.values):.2f}" if len(self.values) > 1 else ""
        if self.target is None:
            return [self.what, f"{median:.2f}", spread, "", ""]
        met = "yes" if median >= self.target else "NO"
        return [self.what, f"{median:.2f}", spread, f">= {self.target:g}", met]


CUSTOMER = "bento POST /v1/customer"
BASELINE_BATCH = "baseline POST /v1/customerbatch"
# (what, "rps" or "seconds", numerator, denominator, target)
RATIOS: tuple[tuple[str, str, str, str, float | None], ...] = (
    ("bento /v1/customer / baseline /v1/customer (req/s, 16 conns)", "rps",
     CUSTOMER, "baseline POST /v1/customer", 10),
    ("bento /v1/customer / bento /livez (req/s, 16 conns)", "rps",
     CUSTOMER, "bento GET /livez", 0.6),
    ("bento /v2/predict @64 / bento /v1/customer @16 (req/s)", "rps",
     "bento POST /v2/predict (1 customer)", CUSTOMER, 1),
    ("baseline /v1/customerbatch / bento /v2/predict-file (time)", "seconds",
     BASELINE_BATCH, "bento POST /v2/predict-file", 2),
    ("baseline /v1/customerbatch / bento /v1/customerbatch (time)", "seconds",
     BASELINE_BATCH, "bento POST /v1/customerbatch", None),
    ("notebook layout: baseline /v1/customerbatch / bento /v2/predict-file (time)", "seconds",
     upload_label("baseline", "/v1/customerbatch", "notebook"),
     upload_label("bento", "/v2/predict-file", "notebook"), 3),
    ("notebook layout: baseline /v1/customerbatch / bento /v1/customerbatch (time)", "seconds",
     upload_label("baseline", "/v1/customerbatch", "notebook"),
     upload_label("bento", "/v1/customerbatch", "notebook"), None),
    # Issue 20: live drift profiling costs at most 5% of /v1/customer's throughput.
    ("bento /v1/customer / same, drift profiling off (req/s, 16 conns)", "rps",
     CUSTOMER, NO_DRIFT_CUSTOMER, 0.95),
    ("same, profiling off / bento /v1/customer (server CPU per request)", "cpu",
     NO_DRIFT_CUSTOMER, CUSTOMER, 0.95),
)  # fmt: skip


def by_round(results: Results, kind: str, label: str) -> dict[int, float]:
    if kind == "rps":
        return {r.round: r.rps for r in results.loads.get(label, [])}
    if kind == "cpu":
        loads = results.loads.get(label, [])
        return {r.round: r.server_cpu_us for r in loads if r.server_cpu_us is not None}
    return {u.round: u.seconds for u in results.uploads.get(label, []) if u.status == 200}


def ratios(results: Results) -> list[Ratio]:
    """The ratios the issue asks for, each computed within a round."""
    found = []
    for what, kind, top, bottom, target in RATIOS:
        tops, bottoms = by_round(results, kind, top), by_round(results, kind, bottom)
        rounds = sorted(tops.keys() & bottoms.keys())
        found.append(Ratio(what, target, [tops[i] / bottoms[i] for i in rounds if bottoms[i]]))
    return found


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


LOAD_HEADERS = (
    "scenario",
    "conns",
    "req/s",
    "p50 ms",
    "p99 ms",
    "non-2xx",
    "sock err",
    "peak RSS MiB",
    "server CPU µs/req",
    "wrk CPU µs/req",
)
UPLOAD_HEADERS = (
    "scenario",
    "status",
    "seconds",
    "rows answered",
    "peak RSS MiB",
    "labels != baseline",
)


def load_row(runs: list[LoadResult]) -> list[object]:
    r = median_load(runs)
    return [
        r.label, r.connections, f"{r.rps:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}",
        r.non_2xx, r.socket_errors, f"{r.peak_rss / MIB:,.0f}",
        _whole(r.server_cpu_us), _whole(r.wrk_cpu_us),
    ]  # fmt: skip


def _whole(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def upload_row(label: str, runs: list[Upload]) -> list[object]:
    differ = [u.differ_from_baseline for u in runs if u.differ_from_baseline is not None]
    return [
        label, ",".join(str(u.status) for u in runs),
        f"{statistics.median(u.seconds for u in runs):.2f}",
        f"{min(u.rows_answered for u in runs):,}", f"{max(u.peak_rss for u in runs) / MIB:,.0f}",
        f"{differ[-1]:,}" if differ else "",
    ]  # fmt: skip


def report(results: Results) -> str:
    s = results.settings
    m = results.machine
    parts = [
        f"churn benchmark {results.started_at} at {m['commit']}: {m['cpus']} CPUs, load average "
        f"{m['load_average_at_start']} at start, {m.get('load_average_at_end')} at end; "
        f"baseline = Flask + gunicorn, {GUNICORN_WORKERS} sync workers",
    ]
    if results.loads:
        parts.append(
            f"\nLoad: wrk, 1 thread, {s['seconds']} s per run after {s['warmup']} s warm-up, "
            f"{s['rounds']} round(s), median"
        )
        parts.append(table(LOAD_HEADERS, [load_row(runs) for runs in results.loads.values()]))
    if results.uploads:
        parts.append(
            f"\nCSVs of {s['rows']:,} rows ({', '.join(s['layouts'])} layout): curl upload + "
            "whole answer, median"
        )
        upload_rows = [upload_row(label, runs) for label, runs in results.uploads.items()]
        parts.append(table(UPLOAD_HEADERS, upload_rows))
    ratio_rows = [ratio.cells() for ratio in ratios(results)]
    parts += [
        "\nRatios (issue 3), each within a round; median and range over rounds",
        table(("ratio", "median", "range", "target", "met"), ratio_rows),
    ]
    parts.append("\nServer RSS, MiB (process tree)")
    memory = [
        [name, f"{results.server_rss_at_start.get(name, 0) / MIB:,.0f}",
         f"{peak / MIB:,.0f}", f"{results.server_rss_at_end.get(name, 0) / MIB:,.0f}"]
        for name, peak in results.server_peak_rss.items()
    ]  # fmt: skip
    parts.append(table(("server", "ready", "peak", "idle at end"), memory))
    if results.failures:
        parts.append("\nFailures:\n" + "\n".join(f"  {f}" for f in results.failures))
    return "\n".join(parts)


def to_json(results: Results) -> dict[str, Any]:
    data = asdict(results)
    data["ratios"] = [
        {"ratio": r.what, "median": r.median, "per_round": r.values, "target": r.target}
        for r in ratios(results)
    ]
    return data


def add_run_options(parser: argparse.ArgumentParser, figures: Path) -> None:
    """--start-timeout and --json, as every harness here has them."""
    parser.add_argument("--start-timeout", type=float, default=180, help="server start (180 s)")
    parser.add_argument("--json", type=Path, default=figures, help="where to write the figures")


def write_figures(path: Path, figures: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"\nfigures written to {path}")


def stop_servers_on_sigterm() -> None:
    """A SIGTERM to the harness unwinds through `finally`, which stops the servers."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def add_wrk_options(parser: argparse.ArgumentParser) -> None:
    """The options of each wrk run (`measure_load`), for every harness that makes them."""
    parser.add_argument("--seconds", type=float, default=15, help="wrk run length (default 15)")
    parser.add_argument("--warmup", type=float, default=3, help="wrk warm-up, not counted (3)")
    parser.add_argument(
        "--max-requests", type=int, default=2_000_000, help="cap on responses per wrk run"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__.split("\n")[0])
    add_wrk_options(parser)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the load runs (median)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the big CSV")
    parser.add_argument("--csv-repeats", type=int, default=1, help="repeat the uploads (median)")
    parser.add_argument(
        "--layouts",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(LAYOUTS),
        help=f"comma-separated CSV layouts out of {', '.join(LAYOUTS)} (default all)",
    )
    parser.add_argument(
        "--only",
        type=lambda text: [g.strip() for g in text.split(",") if g.strip()],
        default=list(GROUPS),
        help=f"comma-separated scenario groups out of {', '.join(GROUPS)} (default all)",
    )
    add_run_options(parser, CACHE / "results.json")
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(GROUPS)
    if unknown:
        parser.error(f"--only: unknown group(s) {', '.join(sorted(unknown))}")
    unknown = set(args.layouts) - set(LAYOUTS)
    if unknown:
        parser.error(f"--layouts: unknown layout(s) {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_tools()
    stop_servers_on_sigterm()
    results = run(args)
    print("\n" + report(results))
    write_figures(args.json, to_json(results))
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
