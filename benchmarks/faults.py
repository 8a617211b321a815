"""The issue-6 faults: a worker killed under load, and readiness while the service starts.

    .venv/bin/python -m benchmarks.faults [--only kill,readiness] [--seconds 30] [--kill-at 10]

kill: starts the Bento with CHURN_WORKERS=2 on a free port of 127.0.0.1, sends
`POST /v1/customer` from an asyncio client (aiohttp, 16 concurrent requests, a new
connection for each, so that every worker gets its share), SIGKILLs one worker process
after --kill-at s, and reports the failed requests, when they failed, how long BentoML
took to start a new worker and to serve from it, and throughput before and after.

readiness: starts the Bento and polls `/livez`, `/readyz` and `POST /v1/customer` every
50 ms from the moment the process starts; reports how long /readyz said not-ready and
whether any prediction failed after /readyz first said 200.

Bounded in time; loopback only; the servers are stopped by process group. Figures, not
assertions: see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil  # type: ignore[import-untyped]

from benchmarks.run import (
    BENTO_COMMAND,
    CACHE,
    CUSTOMER_BODY,
    Server,
    Ticker,
    add_run_options,
    bento_ready,
    check_tools,
    service_revision,
    start,
    stop_servers_on_sigterm,
    throwaway_bento_home,
    wait_until_ready,
    write_figures,
)

WORKER_MODULE = "_bentoml_impl.worker.service"  # `python -m` of a BentoML HTTP worker
WATCH_EVERY = 0.05  # seconds between looks at the server's process tree
POLL_EVERY = 0.05  # seconds between readiness probes
REQUEST_TIMEOUT = 10.0  # seconds, as wrk's --timeout in benchmarks.run
PROBE_TIMEOUT = 2.0  # seconds; a probe left in the listen backlog counts as not ready
JSON_HEADERS = {"Content-Type": "application/json"}
GROUPS = ("kill", "readiness")
INITIALIZED = re.compile(
    r"^(\S+) \[INFO\] \[entry_service:churn:(\d+)\] Service churn initialized", re.M
)


def outcome_of(error: BaseException) -> str:
    return type(error).__name__


# --------------------------------------------------------------------------- workers


def workers(server: Server) -> dict[int, str]:
    """The server's HTTP worker processes: {pid: worker id}; not the supervisor."""
    found: dict[int, str] = {}
    try:
        children = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for proc in children:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            command = proc.cmdline()
            if WORKER_MODULE in command:
                at = command.index("--worker-id") if "--worker-id" in command else -1
                found[proc.pid] = command[at + 1] if at >= 0 else "?"
    return found


def serving(pid: int, port: int) -> bool:
    """Whether process `pid` holds an accepted connection on `port` (it is serving)."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(
        c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
        for c in connections
    )


class TreeWatch(Ticker):
    """Every 50 ms: new worker PIDs, and when each first holds an accepted connection."""

    def __init__(self, server: Server, started: float) -> None:
        super().__init__(WATCH_EVERY)
        self.server = server
        self.started = started
        self.known = set(workers(server))
        self.appeared: dict[int, float] = {}  # new pid -> seconds since `started`
        self.first_served: dict[int, float] = {}

    def tick(self) -> None:
        now = time.monotonic() - self.started
        for pid in workers(self.server).keys() - self.known - self.appeared.keys():
            self.appeared[pid] = now
        for pid in self.appeared.keys() - self.first_served.keys():
            if serving(pid, self.server.port):
                self.first_served[pid] = time.monotonic() - self.started


# --------------------------------------------------------------------------- kill


@dataclass
class Request:
    start: float  # seconds since the load started
    end: float
    outcome: str  # HTTP status, or the exception's class name


@dataclass
class KillResult:
    connections: int
    workers_before: dict[int, str] = field(default_factory=dict)
    victim: int = 0
    victim_worker_id: str = ""
    kill_at: float = 0.0
    load_seconds: float = 0.0
    requests: int = 0
    failed: int = 0
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    first_failure_after_kill: float | None = None  # seconds from the kill, by completion
    last_failure_after_kill: float | None = None
    new_worker_pid: int | None = None
    new_worker_appeared_after_kill: float | None = None
    new_worker_serving_after_kill: float | None = None
    new_worker_initialized_log: str | None = None
    workers_after: dict[int, str] = field(default_factory=dict)
    rps_before: float = 0.0
    rps_recovering: float | None = None  # kill -> restarted worker serving
    rps_after: float | None = None  # restarted worker serving -> end
    p50_ms_before: float = 0.0
    p50_ms_after: float | None = None
    failed_before_kill: int = 0
    log_lines: list[str] = field(default_factory=list)


def rate(requests: Sequence[Request], since: float, until: float) -> float | None:
    if until - since < 1:
        return None
    done = [r for r in requests if since <= r.end < until and r.outcome == "200"]
    return len(done) / (until - since)


def median_ms(requests: Sequence[Request], since: float, until: float) -> float | None:
    times = [
        (r.end - r.start) * 1000 for r in requests if since <= r.end < until and r.outcome == "200"
    ]
    return statistics.median(times) if times else None


async def drive(
    url: str, args: argparse.Namespace, server: Server, result: KillResult
) -> list[Request]:
    """The load, the kill, and the restart watch; returns every request's record."""
    records: list[Request] = []
    started = time.monotonic()
    killed = asyncio.Event()
    state: dict[str, float] = {}

    cap, least = float(args.max_seconds), float(args.seconds)

    def stop_at() -> float:
        # At least --seconds; and until 10 s after a restarted worker served, or the cap.
        if not killed.is_set():
            return cap
        served = [t for t in watch.first_served.values() if t >= state["kill"]]
        return min(cap, max(least, min(served) + 10)) if served else cap

    async def client(session: aiohttp.ClientSession) -> None:
        while (now := time.monotonic() - started) < stop_at():
            try:
                async with session.post(url, data=CUSTOMER_BODY, headers=JSON_HEADERS) as answer:
                    await answer.read()
                    outcome = str(answer.status)
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                outcome = outcome_of(error)
            records.append(Request(now, time.monotonic() - started, outcome))

    async def killer() -> None:
        await asyncio.sleep(args.kill_at)
        current = workers(server)
        if len(current) < 2:
            raise RuntimeError(f"expected at least 2 workers, found {current}")
        result.victim = min(current, key=lambda pid: current[pid])
        result.victim_worker_id = current[result.victim]
        state["kill"] = time.monotonic() - started
        os.kill(result.victim, signal.SIGKILL)
        killed.set()
        print(
            f"SIGKILL worker {result.victim_worker_id} (pid {result.victim}) at "
            f"{state['kill']:.1f} s",
            flush=True,
        )

    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    with TreeWatch(server, started) as watch:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(killer(), *(client(session) for _ in range(args.connections)))
    result.kill_at = state["kill"]
    result.load_seconds = time.monotonic() - started
    new = sorted(watch.appeared, key=lambda pid: watch.appeared[pid])
    if new:
        pid = new[0]
        result.new_worker_pid = pid
        result.new_worker_appeared_after_kill = watch.appeared[pid] - result.kill_at
        if pid in watch.first_served:
            result.new_worker_serving_after_kill = watch.first_served[pid] - result.kill_at
    return records


def kill_scenario(args: argparse.Namespace, env: dict[str, str], logs: Path) -> KillResult:
    result = KillResult(connections=args.connections)
    server = start("faults-kill", BENTO_COMMAND, {**env, "CHURN_WORKERS": "2"}, logs)
    try:
        wait_until_ready(server, bento_ready(server), args.start_timeout)
        result.workers_before = workers(server)
        print(
            f"bento ready on port {server.port} (pid {server.process.pid}), workers "
            f"{result.workers_before}; load: {args.connections} concurrent POST /v1/customer",
            flush=True,
        )
        kill_wall = time.time()
        records = asyncio.run(drive(server.url("/v1/customer"), args, server, result))
        kill_wall += result.kill_at
        result.workers_after = workers(server)
    finally:
        server.stop()
    summarize_kill(result, records)
    log = server.log.read_text(encoding="utf-8", errors="replace")
    result.log_lines = [
        line for line in log.splitlines() if re.search(r"ERROR|WARNING|[Kk]ill|[Ss]ignal", line)
    ][:20]
    for stamp, worker_id in INITIALIZED.findall(log):
        when = datetime.fromisoformat(stamp.replace("+0000", "+00:00")).timestamp()
        # The log has whole seconds: anything in the second of the kill or later.
        if worker_id == result.victim_worker_id and when >= int(kill_wall):
            result.new_worker_initialized_log = f"{stamp}, {when - kill_wall:+.0f} s after the kill"
            break
    return result


def summarize_kill(result: KillResult, records: list[Request]) -> None:
    kill = result.kill_at
    failed = [r for r in records if r.outcome != "200"]
    result.requests, result.failed = len(records), len(failed)
    result.failures_by_kind = dict(collections.Counter(r.outcome for r in failed))
    result.failed_before_kill = sum(1 for r in failed if r.end < kill)
    after = [r.end - kill for r in failed if r.end >= kill]
    if after:
        result.first_failure_after_kill, result.last_failure_after_kill = min(after), max(after)
    end = result.load_seconds
    result.rps_before = rate(records, 0, kill) or 0.0
    result.p50_ms_before = median_ms(records, 0, kill) or 0.0
    if result.new_worker_serving_after_kill is not None:
        recovered = kill + result.new_worker_serving_after_kill
        result.rps_recovering = rate(records, kill, recovered)
        result.rps_after = rate(records, recovered, end)
        result.p50_ms_after = median_ms(records, recovered, end)
    else:
        result.rps_recovering = rate(records, kill, end)


# --------------------------------------------------------------------------- readiness


@dataclass
class ReadinessResult:
    probes: dict[str, int] = field(default_factory=dict)  # probe -> number sent
    first_200: dict[str, float | None] = field(default_factory=dict)  # seconds from start
    not_ready_kinds: dict[str, int] = field(default_factory=dict)  # /readyz before its 200
    readyz_not_ready_after_ready: int = 0
    predictions_failed_after_ready: int = 0
    predictions_failed_before_ready: int = 0
    initialized_log: list[str] = field(default_factory=list)  # "worker N at +S s"
    workers: int = 0


Probe = tuple[float, float, str]  # (sent, answered: seconds from the start, outcome)


async def probe_loop(
    url: str, method: str, started: float, deadline: dict[str, float], after: float | None
) -> list[Probe]:
    """Probe `url` every POLL_EVERY s, a new connection each time, until `deadline["at"]`.

    With `after` (the /readyz loop), its first 200 moves the deadline to `after` s later.
    """
    seen: list[Probe] = []
    body = CUSTOMER_BODY if method == "POST" else None
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        while (sent := time.monotonic() - started) < deadline["at"]:
            try:
                async with session.request(
                    method, url, data=body, headers=JSON_HEADERS if body else None
                ) as answer:
                    await answer.read()
                    outcome = str(answer.status)
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                outcome = outcome_of(error)
            answered = time.monotonic() - started
            seen.append((sent, answered, outcome))
            if after is not None and outcome == "200" and "ready" not in deadline:
                deadline["ready"], deadline["at"] = answered, answered + after
            await asyncio.sleep(max(0.0, POLL_EVERY - (answered - sent)))
    return seen


async def watch_start(
    server: Server, started: float, args: argparse.Namespace
) -> dict[str, list[Probe]]:
    """Probes from the process start until --after s past /readyz's first 200 (or timeout)."""
    deadline = {"at": args.start_timeout}
    found = await asyncio.gather(
        probe_loop(server.url("/readyz"), "GET", started, deadline, args.after),
        probe_loop(server.url("/livez"), "GET", started, deadline, None),
        probe_loop(server.url("/v1/customer"), "POST", started, deadline, None),
    )
    return dict(zip(("/readyz", "/livez", "/v1/customer"), found, strict=True))


def readiness_scenario(
    args: argparse.Namespace, env: dict[str, str], logs: Path
) -> ReadinessResult:
    result = ReadinessResult(workers=int(env.get("CHURN_WORKERS", "2")))
    started_wall, started = time.time(), time.monotonic()
    server = start("faults-readiness", BENTO_COMMAND, env, logs)
    print(f"bento starting on port {server.port} (pid {server.process.pid}); probing", flush=True)
    try:
        seen = asyncio.run(watch_start(server, started, args))
    finally:
        server.stop()
    # Everything by the time an answer came back: when the service said what it said.
    for path, probes in seen.items():
        result.probes[path] = len(probes)
        result.first_200[path] = min((t for _, t, o in probes if o == "200"), default=None)
    ready = result.first_200["/readyz"]
    readyz, predictions = seen["/readyz"], seen["/v1/customer"]
    before = [o for _, t, o in readyz if ready is None or t < ready]
    result.not_ready_kinds = dict(collections.Counter(before))
    if ready is not None:
        result.readyz_not_ready_after_ready = sum(
            1 for _, t, o in readyz if t > ready and o != "200"
        )
        # A prediction sent after /readyz said 200 must succeed.
        result.predictions_failed_after_ready = sum(
            1 for sent, _, o in predictions if sent >= ready and o != "200"
        )
        result.predictions_failed_before_ready = sum(
            1 for sent, _, o in predictions if sent < ready and o != "200"
        )
    log = server.log.read_text(encoding="utf-8", errors="replace")
    for stamp, worker_id in INITIALIZED.findall(log):
        when = datetime.fromisoformat(stamp.replace("+0000", "+00:00")).timestamp()
        result.initialized_log.append(f"worker {worker_id} at {when - started_wall:+.0f} s")
    return result


# --------------------------------------------------------------------------- report


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def report_kill(r: KillResult) -> str:
    appeared = r.new_worker_appeared_after_kill
    kinds = ", ".join(f"{kind} x{n}" for kind, n in sorted(r.failures_by_kind.items())) or "none"
    lines = [
        f"\nWorker kill: {r.connections} concurrent POST /v1/customer (aiohttp, new connection "
        f"each), CHURN_WORKERS=2, SIGKILL worker {r.victim_worker_id} (pid {r.victim}) at "
        f"{r.kill_at:.1f} s of {r.load_seconds:.1f} s",
        f"  requests {r.requests:,}, failed {r.failed:,} ({kinds}); {r.failed_before_kill} "
        "of them before the kill",
        f"  first failure {seconds(r.first_failure_after_kill)} after the kill, last "
        f"{seconds(r.last_failure_after_kill)}",
        f"  new worker (pid {r.new_worker_pid}) appeared {seconds(appeared)} after the kill, "
        f"first served {seconds(r.new_worker_serving_after_kill)} after it; its log: "
        f"initialized {r.new_worker_initialized_log or 'not seen'}",
        f"  workers before {r.workers_before}, after {r.workers_after}",
        f"  throughput (successes/s): before the kill {r.rps_before:,.0f} (p50 "
        f"{r.p50_ms_before:.0f} ms), kill -> new worker serving "
        f"{'n/a' if r.rps_recovering is None else f'{r.rps_recovering:,.0f}'}, after "
        f"{'n/a' if r.rps_after is None else f'{r.rps_after:,.0f}'}"
        + ("" if r.p50_ms_after is None else f" (p50 {r.p50_ms_after:.0f} ms)"),
    ]
    if r.log_lines:
        lines.append("  server log (warnings, errors, signals):")
        lines += [f"    {line[:200]}" for line in r.log_lines]
    return "\n".join(lines)


def report_readiness(r: ReadinessResult) -> str:
    kinds = ", ".join(f"{kind} x{n}" for kind, n in sorted(r.not_ready_kinds.items()))
    firsts = ", ".join(f"{path} {seconds(t)}" for path, t in r.first_200.items())
    ok = r.first_200.get("/readyz") is not None and r.predictions_failed_after_ready == 0
    return "\n".join(
        [
            f"\nReadiness: probes every {POLL_EVERY * 1000:.0f} ms from the process start "
            f"(new connection each, {PROBE_TIMEOUT:g} s timeout), CHURN_WORKERS={r.workers}",
            f"  first 200, seconds from the process start: {firsts}",
            f"  /readyz not ready before that: {kinds or 'never'}",
            f"  'Service churn initialized' in the log: {', '.join(r.initialized_log) or 'none'}",
            f"  predictions failed before /readyz said 200: {r.predictions_failed_before_ready}; "
            f"after: {r.predictions_failed_after_ready}; /readyz not-ready after its first 200: "
            f"{r.readyz_not_ready_after_ready}",
            f"  {'PASS' if ok else 'FAIL'}: no prediction failed once /readyz said 200",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.faults", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        type=lambda text: [g.strip() for g in text.split(",") if g.strip()],
        default=list(GROUPS),
        help=f"comma-separated scenarios out of {', '.join(GROUPS)} (default both)",
    )
    parser.add_argument("--seconds", type=float, default=30, help="kill: load length (30)")
    parser.add_argument("--kill-at", type=float, default=10, help="kill: SIGKILL after (10 s)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=180,
        help="kill: the load goes on until 10 s after the new worker served, at most this (180)",
    )
    parser.add_argument("--connections", type=int, default=16, help="kill: concurrency (16)")
    parser.add_argument(
        "--after", type=float, default=10, help="readiness: probe on after /readyz's 200 (10 s)"
    )
    add_run_options(parser, CACHE / "faults.json")
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(GROUPS)
    if unknown:
        parser.error(f"--only: unknown scenario(s) {', '.join(sorted(unknown))}")
    if not 0 < args.kill_at < args.seconds <= args.max_seconds:
        parser.error("need 0 < --kill-at < --seconds <= --max-seconds")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_tools()
    stop_servers_on_sigterm()
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": service_revision(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
    }
    parts = [
        f"churn faults {figures['started_at']} at {figures['commit']}: {figures['cpus']} CPUs, "
        f"load average {figures['load_average_at_start']} at start"
    ]
    problems = []
    with throwaway_bento_home() as (_, env):
        env.setdefault("CHURN_WORKERS", "2")
        if "kill" in args.only:
            kill = kill_scenario(args, env, logs)
            figures["kill"] = asdict(kill)
            parts.append(report_kill(kill))
            if kill.new_worker_pid is None:
                problems.append("the killed worker was not replaced")
        if "readiness" in args.only:
            readiness = readiness_scenario(args, env, logs)
            figures["readiness"] = asdict(readiness)
            parts.append(report_readiness(readiness))
            if readiness.first_200.get("/readyz") is None:
                problems.append("/readyz never answered 200")
            if readiness.predictions_failed_after_ready:
                problems.append("a prediction failed after /readyz said 200")
    figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print("\n".join(parts))
    write_figures(args.json, figures)
    if problems:
        print("Failures:\n" + "\n".join(f"  {p}" for p in problems))
    # Exit status 1 for a service that misbehaved, never for a figure: no timing targets.
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
