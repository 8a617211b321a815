"""Issue 17, item 3: does batching add latency, and does bulk work leave it behind?

    .venv/bin/python -m benchmarks.latency [--seconds 5] [--rounds 3] [--bulk 3]
                                           [--bulk-customers 30000]

Starts the Bento (`bentoml serve service:ChurnService`, the CHURN_* settings from the
environment) on a free port of 127.0.0.1 with a throw-away BENTOML_HOME, then, in order:

1. fresh: one wrk connection on `POST /v1/customer`, then on `POST /v2/predict` with one
   customer, each after a warm-up; --rounds times, interleaved;
2. bulk: `--bulk` requests of `--bulk-customers` customers each to `/v2/predict`, one
   after the other, each on a new connection;
3. after bulk: the same two runs, `/v2/predict` first and with no warm-up, so that the
   first run starts as the last bulk answer arrives; --rounds times;
4. throughput: `/v1/customer` at 16 connections and `/v2/predict` at 64, as
   `benchmarks.run`'s single and batchable groups do; --rounds times.

It prints p50/p99 of each run, the ratios of issue 17 against their targets (each
within a round; the median and range of the rounds), and what the service's own
histograms on /metrics say about each phase. Figures, not assertions: the exit status
is 1 only if the service did not start, a route did not answer or a bulk request was not
answered in full. See benchmarks/README.md, "Latency of single requests".
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from benchmarks.run import (
    BENTO_COMMAND,
    CACHE,
    CUSTOMER_BODY,
    PREDICT_BODY,
    Load,
    LoadResult,
    Server,
    add_run_options,
    bento_ready,
    check_answer,
    check_tools,
    machine_info,
    parse_wrk,
    run_wrk,
    start,
    stop_servers_on_sigterm,
    table,
    throwaway_bento_home,
    wait_until_ready,
    write_figures,
)
from tests.factories import make_customer

MAX_REQUESTS = 50_000_000  # a per-wrk-run cap far above what a server does in a run
CUSTOMER = Load("bento", "POST", "/v1/customer", 1, CUSTOMER_BODY)
PREDICT = Load("bento", "POST", "/v2/predict", 1, PREDICT_BODY, " (1 customer)")
# (phase, loads, warm-up before each run). Each phase repeats its loads --rounds times,
# interleaved. After bulk there is no warm-up: the first run starts as the bulk ends.
PHASES: tuple[tuple[str, tuple[Load, ...], bool], ...] = (
    ("fresh", (CUSTOMER, PREDICT), True),
    ("after bulk", (PREDICT, CUSTOMER), False),
    ("throughput", (replace(CUSTOMER, connections=16), replace(PREDICT, connections=64)), True),
)
RATIO_TARGET = 1.5  # /v2/predict p50 at most this times /v1/customer's, both times
P99_TARGET_MS = 5.0  # /v2/predict p99 after bulk at most this
WAITS = "churn_predict_queue_wait_seconds"
HISTOGRAMS = ("churn_predict_batch_size", WAITS)


@dataclass
class Run:
    phase: str
    round: int
    result: LoadResult


@dataclass
class Bulk:
    status: int
    seconds: float
    customers_answered: int


@dataclass
class Latency:
    started_at: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    bulk: list[Bulk] = field(default_factory=list)
    # /metrics before each phase (the bulk requests one) and at the end:
    # {histogram: {count, sum, le=0.0}}
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def by_round(self, phase: str, load: Load) -> dict[int, LoadResult]:
        return {
            run.round: run.result
            for run in self.runs
            if run.phase == phase
            and (run.result.label, run.result.connections) == (load.label, load.connections)
        }


def bulk_body(customers: int) -> bytes:
    rows = [make_customer(CustomerId=n, Age=18 + n % 70, Tenure=n % 11) for n in range(customers)]
    return json.dumps({"customers": rows}).encode()


def send_bulk(url: str, body: bytes) -> Bulk:
    started = time.perf_counter()
    # A new client, so a new connection: the worker that takes it is the kernel's choice.
    with httpx.Client(timeout=300) as client:
        answer = client.post(url, content=body, headers={"Content-Type": "application/json"})
    seconds = time.perf_counter() - started
    answered = len(answer.json()) if answer.status_code == 200 else 0
    return Bulk(answer.status_code, seconds, answered)


def histograms(url: str) -> dict[str, dict[str, float]]:
    """{name: {"count", "sum", "le=0.0"}} of the batching histograms on /metrics (the
    workers' sum); a histogram the service does not have is left out."""
    text = httpx.get(url, timeout=30).text
    found = {}
    for name in HISTOGRAMS:
        values = dict(re.findall(rf"^{name}_(sum|count) (\S+)$", text, re.M))
        if values:
            zero = re.search(rf'^{name}_bucket{{le="0.0"}} (\S+)$', text, re.M)
            found[name] = {k: float(v) for k, v in values.items()}
            if zero:
                found[name]["le=0.0"] = float(zero[1])
    return found


def measure(server: Server, load: Load, args: argparse.Namespace, warmup: bool) -> LoadResult:
    url = server.url(load.path)
    if warmup and args.warmup > 0:
        run_wrk(url, load, args.warmup, MAX_REQUESTS)
    cpu = server.cpu_seconds()
    result = parse_wrk(load.label, load.connections, run_wrk(url, load, args.seconds, MAX_REQUESTS))
    # The server's CPU a request moves less with other jobs than its latency does.
    result.server_cpu_us = (server.cpu_seconds() - cpu) / max(result.requests, 1) * 1e6
    return result


def run(args: argparse.Namespace) -> Latency:
    figures = Latency(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine_info(),
        settings={k: v for k, v in vars(args).items() if k != "json"},
    )
    body = bulk_body(args.bulk_customers)
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with throwaway_bento_home() as (_, env):
        server = start("bento-latency", BENTO_COMMAND, env, logs)
        try:
            wait_until_ready(server, bento_ready(server), args.start_timeout)
            print(f"bento ready on port {server.port} (pid {server.process.pid})", flush=True)
            for load in (CUSTOMER, PREDICT):
                problem = check_answer(server.url(load.path), load)
                if problem:
                    figures.failures.append(problem)
                    return figures
            for phase, loads, warmup in PHASES:
                if phase == "after bulk":
                    figures.metrics["bulk"] = histograms(server.url("/metrics"))
                    for n in range(1, args.bulk + 1):
                        print(f"[bulk {n}/{args.bulk}] {args.bulk_customers:,} customers")
                        figures.bulk.append(send_bulk(server.url("/v2/predict"), body))
                figures.metrics[phase] = histograms(server.url("/metrics"))
                for round_ in range(1, args.rounds + 1):
                    for load in loads:
                        print(f"[{phase} {round_}/{args.rounds}] {load.label} x{load.connections}")
                        result = measure(server, load, args, warmup)
                        figures.runs.append(Run(phase, round_, result))
            figures.metrics["end"] = histograms(server.url("/metrics"))
        except (RuntimeError, httpx.HTTPError) as error:
            figures.failures.append(str(error))
        finally:
            server.stop()
    figures.machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    for bulk in figures.bulk:
        if bulk.status != 200 or bulk.customers_answered != args.bulk_customers:
            figures.failures.append(
                f"bulk request: HTTP {bulk.status}, {bulk.customers_answered:,} answered"
            )
    return figures


@dataclass
class Target:
    what: str
    values: list[float]  # one a round
    target: str
    meets: Callable[[float], bool]

    def cells(self) -> list[str]:
        if not self.values:
            return [self.what, "n/a", "", self.target, "n/a"]
        median = statistics.median(self.values)
        spread = f"{min(self.values):.2f}-{max(self.values):.2f}" if len(self.values) > 1 else ""
        if not self.target:  # for information
            return [self.what, f"{median:.2f}", spread, "", ""]
        met = sum(self.meets(v) for v in self.values)
        verdict = "yes" if self.meets(median) else "NO"
        return [
            self.what,
            f"{median:.2f}",
            spread,
            self.target,
            f"{verdict} ({met}/{len(self.values)})",
        ]


def ratios(top: dict[int, LoadResult], bottom: dict[int, LoadResult], of: str) -> list[float]:
    """top ÷ bottom of figure `of`, within each round."""
    rounds = sorted(top.keys() & bottom.keys())
    return [getattr(top[r], of) / getattr(bottom[r], of) for r in rounds if getattr(bottom[r], of)]


def targets(figures: Latency) -> list[Target]:
    found = [
        Target(
            f"{phase}: /v2/predict p50 / /v1/customer p50 (1 conn)",
            ratios(figures.by_round(phase, PREDICT), figures.by_round(phase, CUSTOMER), "p50_ms"),
            f"<= {RATIO_TARGET:g}",
            lambda v: v <= RATIO_TARGET,
        )
        for phase in ("fresh", "after bulk")
    ]
    found += [
        Target(
            f"{phase}: the same ratio of server CPU µs/request",
            ratios(
                figures.by_round(phase, PREDICT),
                figures.by_round(phase, CUSTOMER),
                "server_cpu_us",
            ),
            "",
            lambda v: True,
        )
        for phase in ("fresh", "after bulk")
    ]
    found.append(
        Target(
            "after bulk: /v2/predict p99 ms (1 conn)",
            [r.p99_ms for r in figures.by_round("after bulk", PREDICT).values()],
            f"<= {P99_TARGET_MS:g}",
            lambda v: v <= P99_TARGET_MS,
        )
    )
    customer16, predict64 = PHASES[2][1]
    found.append(
        Target(
            "/v2/predict req/s @64 / /v1/customer req/s @16",
            ratios(
                figures.by_round("throughput", predict64),
                figures.by_round("throughput", customer16),
                "rps",
            ),
            ">= 1",
            lambda v: v >= 1,
        )
    )
    errors = sum(run.result.non_2xx + run.result.socket_errors for run in figures.runs)
    found.append(
        Target(
            "non-2xx (503 included) and socket errors, all runs",
            [errors],
            "0",
            lambda v: v == 0,
        )
    )
    return found


def queue_report(figures: Latency) -> list[str]:
    """What the service's own histograms say about each phase."""
    lines = []
    for phase, end in itertools.pairwise(figures.metrics):
        before, after = figures.metrics[phase], figures.metrics[end]
        if WAITS not in after:
            lines.append(f"{phase}: the service has no {WAITS} histogram")
            continue
        grew = {k: v - before.get(WAITS, {}).get(k, 0) for k, v in after[WAITS].items()}
        count = grew["count"]
        mean = grew["sum"] / count * 1e3 if count else float("nan")
        lines.append(
            f"{phase}: {count:,.0f} requests through "
            f"the batching queue, {grew.get('le=0.0', 0):,.0f} scored at once (no wait), "
            f"mean wait {mean:.3f} ms"
        )
    return lines


def report(figures: Latency) -> str:
    m = figures.machine
    s = figures.settings
    parts = [
        f"churn latency benchmark {figures.started_at} at {m['commit']}: {m['cpus']} CPUs, "
        f"load average {m['load_average_at_start']} at start, {m.get('load_average_at_end')} "
        f"at end; wrk 1 thread, {s['seconds']} s a run, {s['rounds']} round(s) a phase "
        f"interleaved, {s['warmup']} s warm-up before each run except after bulk",
    ]
    rows = [
        [run.phase, run.round, run.result.label, run.result.connections,
         f"{run.result.rps:,.0f}", f"{run.result.p50_ms:.2f}", f"{run.result.p99_ms:.2f}",
         run.result.non_2xx, run.result.socket_errors, f"{run.result.server_cpu_us or 0:,.0f}"]
        for run in figures.runs
    ]  # fmt: skip
    headers = ("phase", "round", "scenario", "conns", "req/s", "p50 ms", "p99 ms", "non-2xx",
               "sock err", "server CPU µs/req")  # fmt: skip
    parts.append(table(headers, rows))
    if figures.bulk:
        parts.append(f"\nBulk requests of {s['bulk_customers']:,} customers to /v2/predict:")
        bulk_rows = [
            [n, b.status, f"{b.seconds:.2f}", f"{b.customers_answered:,}"]
            for n, b in enumerate(figures.bulk, 1)
        ]
        parts.append(table(("#", "status", "seconds", "customers answered"), bulk_rows))
    parts.append("\nTargets (issue 17, item 3): median of the rounds, range, rounds that met it")
    parts.append(
        table(("what", "median", "range", "target", "met"), [t.cells() for t in targets(figures)])
    )
    parts.append("\n/metrics, by phase:")
    parts += [f"  {line}" for line in queue_report(figures)]
    if figures.failures:
        parts.append("\nFailures:\n" + "\n".join(f"  {f}" for f in figures.failures))
    return "\n".join(parts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.latency", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="wrk run length (default 5)")
    parser.add_argument("--warmup", type=float, default=2, help="wrk warm-up where marked (2)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each load a phase (3)")
    parser.add_argument("--bulk", type=int, default=3, help="bulk requests (default 3)")
    parser.add_argument(
        "--bulk-customers", type=int, default=30_000, help="customers a bulk request (30,000)"
    )
    add_run_options(parser, CACHE / "latency.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_tools()
    stop_servers_on_sigterm()
    figures = run(args)
    print("\n" + report(figures))
    found = [{"what": t.what, "per_round": t.values, "target": t.target} for t in targets(figures)]
    write_figures(args.json, asdict(figures) | {"targets": found})
    return 1 if figures.failures else 0


if __name__ == "__main__":
    sys.exit(main())
