"""The issue-6 soak: minutes of load on the single and batchable routes at once.

    .venv/bin/python -m benchmarks.soak [--seconds 300] [--warmup 30] [--connections 64]

Starts the Bento (`bentoml serve service:ChurnService`, CHURN_WORKERS default 2) on a
free port of 127.0.0.1 with a throw-away BENTOML_HOME, warms it up, then runs two wrk
loads concurrently, `POST /v1/customer` and `POST /v2/predict` with one customer, the
connections split between them, while sampling the RSS of the server's process tree
every second. Reports per-route figures and errors, and the RSS after warm-up against
the RSS at the end. Exit status 1 if a route answered errors. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from benchmarks.run import (
    BENTO_COMMAND,
    CACHE,
    CUSTOMER_BODY,
    MIB,
    PREDICT_BODY,
    Load,
    LoadResult,
    Server,
    Ticker,
    add_run_options,
    bento_ready,
    check_answer,
    check_tools,
    parse_wrk,
    run_wrk,
    service_revision,
    start,
    stop_servers_on_sigterm,
    table,
    throwaway_bento_home,
    wait_until_ready,
    write_figures,
)

SAMPLE_EVERY = 1.0  # seconds between RSS samples during the soak
MEMORY_TOLERANCE = 0.10  # the "within 10%" of the RSS after warm-up
MAX_REQUESTS = 50_000_000  # a per-wrk-run cap far above what a server does in the run
SETTLE = 2.0  # seconds between the end of a load and the RSS taken after it


@dataclass
class Soak:
    started_at: str
    settings: dict[str, Any]
    machine: dict[str, Any]
    routes: list[LoadResult] = field(default_factory=list)
    rss_ready: int = 0
    rss_after_warmup: int = 0
    rss_end_of_load: int = 0  # the last sample under load
    rss_end: int = 0  # SETTLE s after the load, as the warm-up figure is taken
    rss_peak: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, bytes)
    failures: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(r.non_2xx + r.socket_errors for r in self.routes)

    @property
    def ratio(self) -> float:
        return self.rss_end / self.rss_after_warmup if self.rss_after_warmup else float("nan")

    @property
    def memory_ok(self) -> bool:
        return abs(self.ratio - 1) <= MEMORY_TOLERANCE


class RssSampler(Ticker):
    """The server tree's RSS every `every` seconds in a thread, as (seconds, bytes)."""

    def __init__(self, server: Server, every: float) -> None:
        super().__init__(every)
        self.server = server
        self.samples: list[tuple[float, int]] = []
        self.started = time.monotonic()

    def tick(self) -> None:
        self.samples.append((time.monotonic() - self.started, self.server.rss()))


def loads(connections: int) -> list[Load]:
    single = connections // 2
    return [
        Load("bento", "POST", "/v1/customer", single, CUSTOMER_BODY),
        Load("bento", "POST", "/v2/predict", connections - single, PREDICT_BODY, " (1 customer)"),
    ]


def concurrently(server: Server, work: Sequence[Load], seconds: float) -> list[str]:
    """wrk on every load at once for `seconds`; the wrk reports, in order."""
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        runs = [
            pool.submit(run_wrk, server.url(load.path), load, seconds, MAX_REQUESTS)
            for load in work
        ]
        return [run.result() for run in runs]


def soak(args: argparse.Namespace) -> Soak:
    work = loads(args.connections)
    result = Soak(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        settings={
            "seconds": args.seconds,
            "warmup": args.warmup,
            "connections": {load.path: load.connections for load in work},
            "workers": os.environ.get("CHURN_WORKERS", "2"),
            "sample_every_s": SAMPLE_EVERY,
        },
        machine={
            "cpus": os.cpu_count(),
            "commit": service_revision(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
    )
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with throwaway_bento_home() as (_, env):
        env.setdefault("CHURN_WORKERS", "2")
        server = start("soak", BENTO_COMMAND, env, logs)
        try:
            wait_until_ready(server, bento_ready(server), args.start_timeout)
            print(f"bento ready on port {server.port} (pid {server.process.pid})", flush=True)
            result.rss_ready = server.rss()
            for load in work:
                problem = check_answer(server.url(load.path), load)
                if problem:
                    result.failures.append(problem)
            if result.failures:
                return result
            split = " + ".join(f"{load.connections} on {load.path}" for load in work)
            print(f"warm-up: {args.warmup:g} s, {split}", flush=True)
            concurrently(server, work, args.warmup)
            time.sleep(SETTLE)
            result.rss_after_warmup = server.rss()
            print(f"RSS after warm-up {result.rss_after_warmup / MIB:,.0f} MiB", flush=True)
            print(f"soak: {args.seconds:g} s, {split}, RSS every {SAMPLE_EVERY:g} s", flush=True)
            with RssSampler(server, SAMPLE_EVERY) as sampler:
                reports = concurrently(server, work, args.seconds)
            result.samples = sampler.samples
            time.sleep(SETTLE)
            result.rss_end = server.rss()
            for load, report in zip(work, reports, strict=True):
                result.routes.append(parse_wrk(load.label, load.connections, report))
        except RuntimeError as error:
            result.failures.append(str(error))
        finally:
            server.stop()
    if result.samples:
        result.rss_end_of_load = result.samples[-1][1]
        result.rss_peak = max(rss for _, rss in result.samples)
    result.machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def mib(size: int) -> str:
    return f"{size / MIB:,.0f}"


def report(result: Soak) -> str:
    s, m = result.settings, result.machine
    connections = " + ".join(f"{n} on {path}" for path, n in s["connections"].items())
    parts = [
        f"churn soak {result.started_at} at {m['commit']}: {m['cpus']} CPUs, load average "
        f"{m['load_average_at_start']} at start, {m.get('load_average_at_end')} at end; "
        f"CHURN_WORKERS={s['workers']}",
        f"\n{s['seconds']:g} s after {s['warmup']:g} s warm-up; wrk, 1 thread a route, "
        f"both routes at once, {connections} connections",
    ]
    rows = [
        [r.label, r.connections, f"{r.requests:,}", f"{r.rps:,.0f}", f"{r.p50_ms:.1f}",
         f"{r.p99_ms:.1f}", r.non_2xx, r.socket_errors]
        for r in result.routes
    ]  # fmt: skip
    headers = ("route", "conns", "requests", "req/s", "p50 ms", "p99 ms", "non-2xx", "sock err")
    parts.append(table(headers, rows))
    minutes = [
        f"{at:.0f} s {mib(rss)}"
        for at, rss in result.samples
        if int(at) % 60 == 0 or (at, rss) == result.samples[-1]
    ]
    memory = [
        mib(result.rss_ready), mib(result.rss_after_warmup), mib(result.rss_peak),
        mib(result.rss_end_of_load), mib(result.rss_end), f"{result.ratio:.3f}",
    ]  # fmt: skip
    memory_headers = (
        "ready", "after warm-up", "peak under load", "last under load", "end", "end/warm-up",
    )  # fmt: skip
    parts += [
        "\nServer RSS, MiB (process tree: supervisor + workers)",
        table(memory_headers, [memory]),
        "under load: " + ", ".join(minutes) if minutes else "",
        "",
        f"{'PASS' if result.routes and not result.errors else 'FAIL'}: zero errors "
        f"({result.errors:,} non-2xx or socket errors)",
        f"{'PASS' if result.memory_ok else 'FAIL'}: RSS at the end within "
        f"{MEMORY_TOLERANCE:.0%} of the RSS after warm-up ({result.ratio - 1:+.1%})",
    ]
    if result.failures:
        parts.append("\nFailures:\n" + "\n".join(f"  {f}" for f in result.failures))
    return "\n".join(parts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300, help="soak length (300)")
    parser.add_argument("--warmup", type=float, default=30, help="warm-up before it (30)")
    parser.add_argument(
        "--connections", type=int, default=64, help="split between the two routes (64)"
    )
    add_run_options(parser, CACHE / "soak.json")
    args = parser.parse_args(argv)
    if args.connections < 2:
        parser.error("--connections: at least 2, one a route")
    if args.seconds < 1 or args.warmup < 1:
        parser.error("--seconds and --warmup: at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_tools()
    stop_servers_on_sigterm()
    result = soak(args)
    print("\n" + report(result))
    write_figures(args.json, asdict(result) | {"errors": result.errors, "rss_ratio": result.ratio})
    return 1 if result.failures or not result.routes or result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
