"""Issue 17, item 3: does batching add latency, and does bulk work leave it behind?

    .venv/bin/python -m benchmarks.latency [--seconds 10] [--bulk 3] [--bulk-customers 30000]

Starts the Bento (`bentoml serve service:ChurnService`, the CHURN_* settings from the
environment) on a free port of 127.0.0.1 with a throw-away BENTOML_HOME, then, in order:

1. fresh: one wrk connection on `POST /v1/customer`, then on `POST /v2/predict` with one
   customer, each after a warm-up;
2. bulk: `--bulk` requests of `--bulk-customers` customers each to `/v2/predict`, one
   after the other, each on a new connection;
3. after bulk: one connection on `/v2/predict` (one customer), then on `/v1/customer`,
   with no warm-up, so that the first run starts as the last bulk answer arrives;
4. throughput: `/v1/customer` at 16 connections and `/v2/predict` at 64, as
   `benchmarks.run`'s single and batchable groups do.

It prints p50/p99 of each run, the ratios of issue 17 against their targets, and what
the service's own histograms on /metrics say about batching. Figures, not assertions:
the exit status is 1 only if the service did not start or a route did not answer.
See benchmarks/README.md, "Latency of single requests".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
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
# (phase, load, warm-up): after bulk, no warm-up, so the first run starts right after it.
PHASES: tuple[tuple[str, Load, bool], ...] = (
    ("fresh", CUSTOMER, True),
    ("fresh", PREDICT, True),
    ("after bulk", PREDICT, False),
    ("after bulk", CUSTOMER, False),
    ("throughput", Load("bento", "POST", "/v1/customer", 16, CUSTOMER_BODY), True),
    ("throughput", Load("bento", "POST", "/v2/predict", 64, PREDICT_BODY, " (1 customer)"), True),
)
RATIO_TARGET = 1.5  # /v2/predict p50 at most this times /v1/customer's, both times
P99_TARGET_MS = 5.0  # /v2/predict p99 after bulk at most this
HISTOGRAMS = ("churn_predict_batch_size", "churn_predict_queue_wait_seconds")


@dataclass
class Run:
    phase: str
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
    # {histogram: (sum, count)} from /metrics, after bulk+single and at the end
    metrics: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def find(self, phase: str, label: str, connections: int) -> LoadResult | None:
        for run in self.runs:
            if (run.phase, run.result.label, run.result.connections) == (
                phase,
                label,
                connections,
            ):
                return run.result
        return None


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


def histograms(url: str) -> dict[str, tuple[float, float]]:
    """{name: (sum, count)} of the batching histograms the service exposes on /metrics."""
    text = httpx.get(url, timeout=30).text
    found = {}
    for name in HISTOGRAMS:
        values = dict(re.findall(rf"^{name}_(sum|count) (\S+)$", text, re.M))
        if values:
            found[name] = (float(values["sum"]), float(values["count"]))
    return found


def measure(url: str, load: Load, args: argparse.Namespace, warmup: bool) -> LoadResult:
    if warmup and args.warmup > 0:
        run_wrk(url, load, args.warmup, MAX_REQUESTS)
    return parse_wrk(load.label, load.connections, run_wrk(url, load, args.seconds, MAX_REQUESTS))


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
            for phase, load, warmup in PHASES:
                if phase == "after bulk" and not figures.bulk:
                    for n in range(1, args.bulk + 1):
                        print(
                            f"[bulk {n}/{args.bulk}] {args.bulk_customers:,} customers", flush=True
                        )
                        figures.bulk.append(send_bulk(server.url("/v2/predict"), body))
                if phase == "throughput" and "after bulk" not in figures.metrics:
                    figures.metrics["after bulk"] = histograms(server.url("/metrics"))
                print(f"[{phase}] {load.label} x{load.connections}", flush=True)
                result = measure(server.url(load.path), load, args, warmup)
                figures.runs.append(Run(phase, result))
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
    value: float | None
    target: str
    met: bool | None


def targets(figures: Latency) -> list[Target]:
    found = []
    for phase in ("fresh", "after bulk"):
        customer = figures.find(phase, CUSTOMER.label, 1)
        predict = figures.find(phase, PREDICT.label, 1)
        ratio = (
            predict.p50_ms / customer.p50_ms if predict and customer and customer.p50_ms else None
        )
        found.append(
            Target(
                f"{phase}: /v2/predict p50 / /v1/customer p50 (1 conn)",
                ratio,
                f"<= {RATIO_TARGET:g}",
                None if ratio is None else ratio <= RATIO_TARGET,
            )
        )
    predict = figures.find("after bulk", PREDICT.label, 1)
    p99 = predict.p99_ms if predict else None
    found.append(
        Target("after bulk: /v2/predict p99 ms (1 conn)", p99, f"<= {P99_TARGET_MS:g}",
               None if p99 is None else p99 <= P99_TARGET_MS)
    )  # fmt: skip
    customer16 = figures.find("throughput", CUSTOMER.label, 16)
    predict64 = figures.find("throughput", PREDICT.label, 64)
    ratio = predict64.rps / customer16.rps if predict64 and customer16 and customer16.rps else None
    found.append(
        Target("/v2/predict req/s @64 / /v1/customer req/s @16", ratio, ">= 1",
               None if ratio is None else ratio >= 1)
    )  # fmt: skip
    errors = sum(run.result.non_2xx + run.result.socket_errors for run in figures.runs)
    found.append(
        Target("non-2xx (503 included) and socket errors, all runs", errors, "0", errors == 0)
    )
    return found


def report(figures: Latency) -> str:
    m = figures.machine
    s = figures.settings
    parts = [
        f"churn latency benchmark {figures.started_at} at {m['commit']}: {m['cpus']} CPUs, "
        f"load average {m['load_average_at_start']} at start, {m.get('load_average_at_end')} "
        f"at end; wrk 1 thread, {s['seconds']} s a run ({s['warmup']} s warm-up where marked)",
    ]
    rows = [
        [run.phase, run.result.label, run.result.connections, f"{run.result.rps:,.0f}",
         f"{run.result.p50_ms:.2f}", f"{run.result.p99_ms:.2f}",
         run.result.non_2xx, run.result.socket_errors]
        for run in figures.runs
    ]  # fmt: skip
    parts.append(
        table(
            ("phase", "scenario", "conns", "req/s", "p50 ms", "p99 ms", "non-2xx", "sock err"), rows
        )
    )
    if figures.bulk:
        parts.append(f"\nBulk requests of {s['bulk_customers']:,} customers to /v2/predict:")
        parts.append(
            table(
                ("#", "status", "seconds", "customers answered"),
                [
                    [n, b.status, f"{b.seconds:.2f}", f"{b.customers_answered:,}"]
                    for n, b in enumerate(figures.bulk, 1)
                ],
            )
        )
    parts.append("\nTargets (issue 17, item 3)")
    parts.append(
        table(
            ("what", "value", "target", "met"),
            [
                [
                    t.what,
                    "n/a" if t.value is None else f"{t.value:.2f}",
                    t.target,
                    {None: "n/a", True: "yes", False: "NO"}[t.met],
                ]
                for t in targets(figures)
            ],
        )
    )
    for moment, found in figures.metrics.items():
        for name, (total, count) in found.items():
            mean = total / count if count else float("nan")
            parts.append(f"/metrics {moment}: {name} count {count:,.0f}, mean {mean:.6g}")
    if figures.failures:
        parts.append("\nFailures:\n" + "\n".join(f"  {f}" for f in figures.failures))
    return "\n".join(parts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.latency", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="wrk run length (default 10)")
    parser.add_argument("--warmup", type=float, default=3, help="wrk warm-up where marked (3)")
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
    write_figures(args.json, asdict(figures) | {"targets": [asdict(t) for t in targets(figures)]})
    return 1 if figures.failures else 0


if __name__ == "__main__":
    sys.exit(main())
