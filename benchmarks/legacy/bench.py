"""Issue 26, part 3: the old app in its own environment, side by side with the service.

    make bench-legacy                  # builds what it needs first, then:
    .venv/bin/python -m benchmarks.legacy [--rounds 3] [--seconds 15] [--rows 1000000]
                                          [--only correctness,speed] [--data CSV]

- **old**: the department's Flask app as written (`benchmarks/legacy/app.py`), under
  gunicorn with 4 sync workers, in the notebook's environment (`make legacy-env`),
  serving the department-style pipeline its notebook script pickled there
  (`make legacy-model`: build/legacy/churn_prediction_model_v1_0.joblib);
- **bento**: `bentoml serve service:ChurnService` on a throw-away BENTOML_HOME into which
  that same file is imported with `churn import-model FILE --sha256 HEX`, the digest the
  notebook printed (build/legacy-model.sha256, outside the model's folder).

Then:

1. correctness: the public data set's 10,000 customers, in the notebook's layout, on
   `/v1/customerbatch` (multipart field `file`, as the old Streamlit page uploaded), and
   1,000 of them on `/v1/customer` (the nine features as JSON, as the notebook posted
   them): the count of customers labelled differently, and of ids either one left out;
2. speed, `--rounds` times, interleaved: `/v1/customer` at 1 connection, then at 16
   (wrk); then per server its burst: the `--rows` file in the notebook's layout on
   `/v1/customerbatch` (curl), and at once, with no warm-up, 1 connection again;
3. ratios against the old app measured in the same round, with the machine's load
   average beside every figure: the machine is shared.

The old app runs only here, in its own environment, on a file this benchmark made.
Figures, not assertions: the exit status is 1 if a server did not start, a route did not
answer or an upload was not answered in full, 2 if something it needs is not here (the
old environment, the model, issue 26's foreign-pickle import: branch i26a), 0 with a
message if the public data set is absent; never because of a figure or a differing label
(those are printed). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from benchmarks.run import (
    BENTO_COMMAND,
    BIN,
    CACHE,
    CUSTOMER_BODY,
    GUNICORN_WORKERS,
    MIB,
    NOTEBOOK_COLUMNS,
    PUBLIC_DATA,
    ROOT,
    Load,
    LoadResult,
    MemoryWatch,
    Ratio,
    Results,
    Server,
    Upload,
    add_run_options,
    add_wrk_options,
    baseline_ready,
    bento_environment,
    bento_ready,
    check_answer,
    check_tools,
    labels_of,
    layout_csv,
    machine_info,
    measure_load,
    median_load,
    post_file,
    start,
    stop_servers_on_sigterm,
    table,
    wait_until_ready,
    write_figures,
)
from benchmarks.run import (
    MODEL as BUNDLED_MODEL,
)
from churn.record.schema import FEATURE_NAMES

HERE = Path(__file__).resolve().parent
LEGACY_ENV = ROOT / "build" / "legacy-env"
MODEL = ROOT / "build" / "legacy" / "churn_prediction_model_v1_0.joblib"
DIGEST = ROOT / "build" / "legacy-model.sha256"
FIGURES = CACHE / "legacy" / "results.json"
LOGS = CACHE / "legacy" / "logs"
OLD, NEW = "old", "bento"
SERVERS = (OLD, NEW)
GROUPS = ("correctness", "speed")
SINGLE_SAMPLE = 1_000
SAMPLE_SEED = 26


# gunicorn changes to the model's folder first, so the app's plain
# `joblib.load("churn_prediction_model_v1_0.joblib")` finds it, as it did beside the app.
def old_command(model: Path) -> list[str]:
    return [
        str(LEGACY_ENV / "bin" / "gunicorn"), "--workers", str(GUNICORN_WORKERS),
        "--worker-class", "sync", "--bind", "127.0.0.1:{port}", "--timeout", "600",
        "--chdir", str(model.parent.resolve()), "--pythonpath", str(HERE), "app:app",
    ]  # fmt: skip


def old_environment() -> dict[str, str]:
    """This process's environment without anything that would put the project's packages
    on the old app's path."""
    dropped = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in dropped} | {"PYTHONUNBUFFERED": "1"}


class Unavailable(Exception):
    """Something the benchmark needs is not here; the message says what and how to get it."""


def import_model(env: Mapping[str, str], model: Path, digest: str) -> None:
    """`churn import-model FILE --sha256 HEX` into `env`'s BENTOML_HOME, or `Unavailable`."""
    command = [str(BIN / "churn"), "import-model", str(model), "--sha256", digest]
    print(f"importing: churn import-model {model.name} --sha256 {digest}", flush=True)
    done = subprocess.run(command, env=dict(env), cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise Unavailable(
            f"`churn import-model {model} --sha256 {digest}` failed "
            f"(exit {done.returncode}):\n  " + "\n  ".join(said) + "\n"
            "Importing a pickle made elsewhere is issue 26, part 1 (branch i26a); until it "
            "is in this tree, `--service-model bundled` runs the harness against the "
            "bundled model instead (its labels then differ: it is another model)."
        )
    print(done.stdout.strip(), flush=True)


def import_bundled(env: Mapping[str, str]) -> None:
    print(
        "WARNING: --service-model bundled: the service serves the bundled model, not the "
        "old app's; labels will differ and the speed figures compare two different models.",
        flush=True,
    )
    subprocess.run(
        [str(BIN / "churn"), "import-model", str(BUNDLED_MODEL)],
        env=dict(env), cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


# --------------------------------------------------------------------------- correctness


@dataclass
class Agreement:
    """Two servers' answers to the same customers, compared id by id."""

    route: str
    customers: int
    old_answered: int
    new_answered: int
    differ: int  # labelled differently by the two
    missing: int  # ids that one of them did not answer
    old_churn: int = 0  # how many the old app labelled churn (the comparison is not empty)
    examples: list[str] = field(default_factory=list)


def compare(
    route: str, ids: Sequence[str], old: Mapping[str, str], new: Mapping[str, str]
) -> Agreement:
    """Count the ids the two label differently (case aside: the routes' own spellings are
    compared as they are) and those either one did not answer."""
    differ = [key for key in ids if key in old and key in new and old[key] != new[key]]
    missing = [key for key in ids if key not in old or key not in new]
    return Agreement(
        route=route,
        customers=len(ids),
        old_answered=sum(key in old for key in ids),
        new_answered=sum(key in new for key in ids),
        differ=len(differ),
        missing=len(missing),
        old_churn=sum(old.get(key, "").lower() == "churn" for key in ids),
        examples=[f"{key}: old {old.get(key)!r}, new {new.get(key)!r}" for key in differ[:5]],
    )


def public_customers(data: Path) -> pd.DataFrame:
    """The public data set's customers in the notebook's layout, ids as they are."""
    return pd.read_csv(data, usecols=list(NOTEBOOK_COLUMNS))[list(NOTEBOOK_COLUMNS)]


def batch_labels(url: str, csv: bytes) -> dict[str, str]:
    """A `/v1/customerbatch` answer, uploaded as the old Streamlit page did."""
    answer = httpx.post(url, files={"file": ("customers.csv", csv, "text/csv")}, timeout=600)
    if answer.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {answer.status_code} {answer.text[:300]}")
    parsed = answer.json()
    if not isinstance(parsed, dict):
        raise RuntimeError(f"{url}: not a JSON object: {answer.text[:300]}")
    return {str(key): str(value) for key, value in parsed.items()}


def single_labels(url: str, customers: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """`/v1/customer` for each customer, as the notebook posted it: {CustomerId: label}."""
    labels = {}
    with httpx.Client(timeout=30) as client:
        for customer in customers:
            body = {name: customer[name] for name in FEATURE_NAMES}
            answer = client.post(url, json=body)
            if answer.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {answer.status_code} {answer.text[:300]}")
            labels[str(customer["CustomerId"])] = str(answer.json()["Prediction"])
    return labels


def correctness(
    servers: Mapping[str, Server], customers: pd.DataFrame, singles: int
) -> list[Agreement]:
    """Every customer on /v1/customerbatch, `singles` of them (a seeded sample) on
    /v1/customer, to both servers; their labels compared."""
    ids = [str(key) for key in customers["CustomerId"]]
    csv = customers.to_csv(index=False).encode()
    print(f"correctness: {len(ids):,} customers on /v1/customerbatch", flush=True)
    answers = {name: batch_labels(s.url("/v1/customerbatch"), csv) for name, s in servers.items()}
    found = [compare("/v1/customerbatch", ids, answers[OLD], answers[NEW])]
    rng = np.random.default_rng(SAMPLE_SEED)
    rows = rng.choice(len(customers), size=min(singles, len(customers)), replace=False)
    # to_dict gives Python numbers, as a notebook's literal dicts had them.
    sample = [
        {str(key): value for key, value in record.items()}
        for record in customers.iloc[np.sort(rows)].to_dict(orient="records")
    ]
    print(f"correctness: {len(sample):,} customers on /v1/customer", flush=True)
    answers = {name: single_labels(s.url("/v1/customer"), sample) for name, s in servers.items()}
    sample_ids = [str(customer["CustomerId"]) for customer in sample]
    found.append(compare("/v1/customer", sample_ids, answers[OLD], answers[NEW]))
    return found


# --------------------------------------------------------------------------- speed

ONE = " (1 conn)"
AFTER = " (1 conn, after its burst)"


def customer_load(server: str, connections: int, note: str = "") -> Load:
    return Load(server, "POST", "/v1/customer", connections, CUSTOMER_BODY, note)


def upload_label(server: str) -> str:
    return f"{server} POST /v1/customerbatch"


def upload(server: Server, csv: Path, out: Path, watch: MemoryWatch, round_: int) -> Upload:
    """The big file on `/v1/customerbatch` (curl, as benchmarks.run), the answer into `out`."""
    peak: dict[str, int] = {}
    load_average = [round(x, 2) for x in os.getloadavg()]
    with watch.window(server.name, peak):
        status, seconds = post_file(server.url("/v1/customerbatch"), csv, out)
    result = Upload(upload_label(server.name), status, seconds, 0, peak["peak_rss"])
    result.round, result.load_average = round_, load_average
    return result


def speed(
    servers: Mapping[str, Server], watch: MemoryWatch, args: argparse.Namespace,
    results: Results, scratch: Path,
) -> None:  # fmt: skip
    csv = layout_csv(args.rows, "notebook", public=args.data)
    for name in SERVERS:
        load = customer_load(name, 1)
        problem = check_answer(servers[name].url(load.path), load)
        if problem:
            raise RuntimeError(problem)
    for round_ in range(1, args.rounds + 1):
        prefix = f"[round {round_}/{args.rounds}]"
        for connections, note in ((1, ONE), (16, "")):
            for name in SERVERS:
                load = customer_load(name, connections, note)
                print(f"{prefix} {load.label} x{connections}", flush=True)
                measure_load(load, servers[name], watch, args, results, round_)
        labels: dict[str, dict[str, str]] = {}
        for name in SERVERS:
            print(f"{prefix} {upload_label(name)} ({args.rows:,} rows), then 1 conn", flush=True)
            out = scratch / f"{name}.out"
            try:
                done = upload(servers[name], csv, out, watch, round_)
            except RuntimeError as error:
                results.failures.append(f"{upload_label(name)}: {error}")
                continue
            # At once: what a single customer meets right after the server's burst (the
            # answer is read afterwards, not in between).
            load = customer_load(name, 1, AFTER)
            measure_load(load, servers[name], watch, args, results, round_, warmup=False)
            labels[name] = labels_of(out) if done.status == 200 else {}
            out.unlink(missing_ok=True)
            done.rows_answered = len(labels[name])
            if done.status != 200 or done.rows_answered != args.rows:
                results.failures.append(
                    f"{done.label}: HTTP {done.status}, {done.rows_answered:,} of "
                    f"{args.rows:,} rows answered"
                )
            results.uploads.setdefault(done.label, []).append(done)
        if labels.get(OLD) and labels.get(NEW):
            new_upload = results.uploads[upload_label(NEW)][-1]
            new_upload.differ_from_baseline = sum(
                labels[OLD].get(key) != value for key, value in labels[NEW].items()
            )


# --------------------------------------------------------------------------- ratios

# (what, kind, numerator, denominator): kind "rps", "p50", "p99" (of loads) or "seconds".
RATIOS: tuple[tuple[str, str, str, str], ...] = (
    ("/v1/customer req/s at 16 conns: bento / old", "rps",
     customer_load(NEW, 16).label, customer_load(OLD, 16).label),
    ("/v1/customer req/s at 1 conn: bento / old", "rps",
     customer_load(NEW, 1, ONE).label, customer_load(OLD, 1, ONE).label),
    ("/v1/customer p50 at 1 conn: old / bento", "p50",
     customer_load(OLD, 1, ONE).label, customer_load(NEW, 1, ONE).label),
    ("/v1/customer p99 at 16 conns: old / bento", "p99",
     customer_load(OLD, 16).label, customer_load(NEW, 16).label),
    ("/v1/customer p50 at 1 conn after the burst: old / bento", "p50",
     customer_load(OLD, 1, AFTER).label, customer_load(NEW, 1, AFTER).label),
    ("/v1/customer p99 at 1 conn after the burst: old / bento", "p99",
     customer_load(OLD, 1, AFTER).label, customer_load(NEW, 1, AFTER).label),
    ("/v1/customerbatch, the big file's seconds: old / bento", "seconds",
     upload_label(OLD), upload_label(NEW)),
)  # fmt: skip

FIGURE: dict[str, Callable[[LoadResult], float]] = {
    "rps": lambda r: r.rps,
    "p50": lambda r: r.p50_ms,
    "p99": lambda r: r.p99_ms,
}


def per_round(results: Results, kind: str, label: str) -> dict[int, float]:
    if kind == "seconds":
        return {u.round: u.seconds for u in results.uploads.get(label, []) if u.status == 200}
    return {r.round: FIGURE[kind](r) for r in results.loads.get(label, [])}


def ratios(results: Results) -> list[Ratio]:
    """Each ratio within a round (both figures measured minutes apart), as benchmarks.run."""
    found = []
    for what, kind, top, bottom in RATIOS:
        tops, bottoms = per_round(results, kind, top), per_round(results, kind, bottom)
        rounds = sorted(tops.keys() & bottoms.keys())
        found.append(Ratio(what, None, [tops[i] / bottoms[i] for i in rounds if bottoms[i]]))
    return found


# --------------------------------------------------------------------------- the run


@dataclass
class Legacy:
    results: Results
    model: str
    sha256: str
    served_model: dict[str, Any] = field(default_factory=dict)
    agreements: list[Agreement] = field(default_factory=list)


def model_summary(server: Server) -> dict[str, Any]:
    """What the service says it serves (`/v2/model`), for the report; {} if it will not say."""
    try:
        answer = httpx.get(server.url("/v2/model"), timeout=30)
        parsed = answer.json() if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}
    keep = ("model_tag", "version", "trained_at", "threshold", "source", "provenance")
    return {k: parsed[k] for k in keep if isinstance(parsed, dict) and k in parsed}


def run(args: argparse.Namespace, digest: str) -> Legacy:
    legacy = Legacy(
        Results(
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            machine=machine_info(),
            settings={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            | {"gunicorn_workers": GUNICORN_WORKERS},
        ),
        model=str(args.model),
        sha256=digest,
    )
    results = legacy.results
    logs: Path = args.logs
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="churn-bench-legacy-") as tmp:
        scratch = Path(tmp)
        env = bento_environment(scratch / "bentoml")
        if args.service_model == "bundled":
            import_bundled(env)
        else:
            import_model(env, args.model, digest)
        servers: dict[str, Server] = {}
        try:
            servers[OLD] = start(OLD, old_command(args.model), old_environment(), logs)
            servers[NEW] = start(NEW, BENTO_COMMAND, env, logs)
            for name, probe in ((OLD, baseline_ready), (NEW, bento_ready)):
                wait_until_ready(servers[name], probe(servers[name]), args.start_timeout)
                print(
                    f"{name} ready on port {servers[name].port} (pid {servers[name].process.pid})"
                )
            results.server_rss_at_start = {name: s.rss() for name, s in servers.items()}
            legacy.served_model = model_summary(servers[NEW])
            if "correctness" in args.only:
                legacy.agreements = correctness(servers, public_customers(args.data), args.singles)
            with MemoryWatch(list(servers.values())) as watch:
                if "speed" in args.only:
                    speed(servers, watch, args, results, scratch)
            results.server_peak_rss = dict(watch.overall)
            time.sleep(2)
            results.server_rss_at_end = {name: s.rss() for name, s in servers.items()}
        except (RuntimeError, httpx.HTTPError) as error:
            results.failures.append(str(error))
        finally:
            for server in servers.values():
                server.stop()
    results.machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return legacy


# --------------------------------------------------------------------------- report


def load_average_cell(values: Sequence[list[float] | None]) -> str:
    """The 1-minute load averages of the rounds, as measured at each run's start."""
    known = [f"{v[0]:.1f}" for v in values if v]
    return ", ".join(known)


AGREEMENT_HEADERS = (
    "route", "customers", "old answered", "bento answered", "old: churn", "labels differ",
    "ids missing",
)  # fmt: skip
LOAD_HEADERS = (
    "scenario", "conns", "runs", "req/s", "req/s each", "p50 ms", "p99 ms", "non-2xx",
    "sock err", "peak RSS MiB", "server CPU µs/req", "load avg 1m",
)  # fmt: skip
UPLOAD_HEADERS = (
    "scenario", "status", "seconds each", "median", "rows answered", "peak RSS MiB",
    "labels != old", "load avg 1m",
)  # fmt: skip


def agreement_row(a: Agreement) -> list[object]:
    return [
        a.route, f"{a.customers:,}", f"{a.old_answered:,}", f"{a.new_answered:,}",
        f"{a.old_churn:,}", f"{a.differ:,}", f"{a.missing:,}",
    ]  # fmt: skip


def load_rows(results: Results) -> list[list[object]]:
    rows: list[list[object]] = []
    for runs in results.loads.values():
        r = median_load(runs)
        rows.append([
            r.label, r.connections, len(runs), f"{r.rps:,.0f}",
            ", ".join(f"{x.rps:,.0f}" for x in runs), f"{r.p50_ms:.2f}", f"{r.p99_ms:.1f}",
            r.non_2xx, r.socket_errors, f"{r.peak_rss / MIB:,.0f}",
            "" if r.server_cpu_us is None else f"{r.server_cpu_us:,.0f}",
            load_average_cell([x.load_average for x in runs]),
        ])  # fmt: skip
    return rows


def upload_rows(results: Results) -> list[list[object]]:
    rows: list[list[object]] = []
    for label, runs in results.uploads.items():
        differ = [u.differ_from_baseline for u in runs if u.differ_from_baseline is not None]
        rows.append([
            label, ",".join(str(u.status) for u in runs),
            ", ".join(f"{u.seconds:.2f}" for u in runs),
            f"{statistics.median(u.seconds for u in runs):.2f}",
            f"{min(u.rows_answered for u in runs):,}",
            f"{max(u.peak_rss for u in runs) / MIB:,.0f}",
            ", ".join(f"{d:,}" for d in differ),
            load_average_cell([u.load_average for u in runs]),
        ])  # fmt: skip
    return rows


def report(legacy: Legacy) -> str:
    results, s, m = legacy.results, legacy.results.settings, legacy.results.machine
    parts = [
        f"churn legacy benchmark {results.started_at} at {m['commit']}: {m['cpus']} CPUs, "
        f"load average {m['load_average_at_start']} at start, "
        f"{m.get('load_average_at_end')} at end",
        f"model: {legacy.model} (SHA-256 {legacy.sha256}); the service serves "
        f"{s['service_model']}: {json.dumps(legacy.served_model)}",
        f"old = benchmarks/legacy/app.py, gunicorn {GUNICORN_WORKERS} sync workers, "
        f"{LEGACY_ENV.relative_to(ROOT)}; bento = bentoml serve service:ChurnService",
    ]
    if legacy.agreements:
        parts.append("\nCorrectness: the same customers to both, labels compared id by id")
        parts.append(table(AGREEMENT_HEADERS, [agreement_row(a) for a in legacy.agreements]))
        parts += [f"  {a.route}: {e}" for a in legacy.agreements for e in a.examples]
    if results.loads:
        parts.append(
            f"\n/v1/customer: wrk, 1 thread, {s['seconds']} s per run after {s['warmup']} s "
            f"warm-up (none after the burst), {s['rounds']} round(s); median, then each round"
        )
        parts.append(table(LOAD_HEADERS, load_rows(results)))
    if results.uploads:
        parts.append(
            f"\nThe burst: {s['rows']:,} rows in the notebook's layout on /v1/customerbatch "
            "(curl upload + whole answer)"
        )
        parts.append(table(UPLOAD_HEADERS, upload_rows(results)))
    parts += [
        "\nRatios against the old app in its own environment, each within a round",
        table(("ratio", "median", "range"), [r.cells()[:3] for r in ratios(results)]),
    ]
    if results.failures:
        parts.append("\nFailures:\n" + "\n".join(f"  {f}" for f in results.failures))
    return "\n".join(parts)


def to_json(legacy: Legacy) -> dict[str, Any]:
    data = asdict(legacy)
    data["ratios"] = [
        {"ratio": r.what, "median": r.median, "per_round": r.values} for r in ratios(legacy.results)
    ]
    return data


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.legacy", description=__doc__.split("\n")[0])
    add_wrk_options(parser)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the speed part (3)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the big file")
    parser.add_argument("--singles", type=int, default=SINGLE_SAMPLE, help="/v1/customer sample")
    parser.add_argument("--data", type=Path, default=PUBLIC_DATA, help="Churn_Modelling.csv")
    parser.add_argument("--model", type=Path, default=MODEL, help="the old app's joblib file")
    parser.add_argument("--sha256", help=f"its digest (default: read from {DIGEST.name})")
    parser.add_argument(
        "--service-model", choices=("imported", "bundled"), default="imported",
        help="what the service serves: the old app's file imported (default), or the bundled "
        "model (to try the harness before the foreign-pickle import exists; labels differ)",
    )  # fmt: skip
    parser.add_argument(
        "--only",
        type=lambda text: [g.strip() for g in text.split(",") if g.strip()],
        default=list(GROUPS),
        help=f"comma-separated parts out of {', '.join(GROUPS)} (default both)",
    )
    parser.add_argument("--logs", type=Path, default=LOGS, help="the servers' logs")
    add_run_options(parser, FIGURES)
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(GROUPS)
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    return args


def preflight(args: argparse.Namespace) -> str:
    """The model's digest once everything the run needs is here; `Unavailable` otherwise."""
    if not (LEGACY_ENV / "bin" / "gunicorn").exists():
        raise Unavailable(f"{LEGACY_ENV} is missing: `make legacy-env` builds it.")
    if not args.model.is_file():
        raise Unavailable(f"{args.model} is missing: `make legacy-model` makes it.")
    if args.sha256:
        return str(args.sha256)
    if not DIGEST.is_file():
        raise Unavailable(f"{DIGEST} is missing: `make legacy-model` writes it, or --sha256.")
    return DIGEST.read_text(encoding="utf-8").strip()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_file():
        print(f"skipped: the public data set {args.data} is absent (--data, or PUBLIC_DATA=...)")
        return 0
    check_tools()
    try:
        digest = preflight(args)
        stop_servers_on_sigterm()
        legacy = run(args, digest)
    except Unavailable as missing:
        print(missing, file=sys.stderr)
        return 2
    print("\n" + report(legacy))
    write_figures(args.json, to_json(legacy))
    return 1 if legacy.results.failures else 0
