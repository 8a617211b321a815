"""What each route costs inside the service's ASGI app, without the HTTP server.

    .venv/bin/python -m benchmarks.inprocess [--requests 4000] [--rounds 5]

Builds the app `bentoml serve` runs (`ChurnService.to_asgi`, with every middleware, on a
throw-away BENTOML_HOME holding the bundled model), runs its start-up, and calls it
directly with ASGI messages: `/livez` and `/v1/customer` from 16 concurrent callers,
`/v2/predict` with one customer per call from 64, so that they are batched. Each
figure is the process's CPU time per request, which other jobs on the machine move less
than they move requests per second; the rounds are interleaved and the table shows
medians.

What it leaves out is much the same for every route: uvicorn, its HTTP parser and the
sockets. What it shows is where the routes differ: the fast path (churn.serving.fastpath) for
`/v1/customer` and `/v2/predict`, with batching (churn.serving.batching) for the second; with
CHURN_FAST_PATH=false, FastAPI and our handler for the first, BentoML's API path for
the second.
`--profile ROUTE` prints cProfile's cumulative table for one route instead.
`--compare-drift` measures each round twice in the same process, with live drift
profiling on and off (the service's scorer object switched between its profiling class
and the plain one), and prints what profiling costs. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

from benchmarks.run import CUSTOMER_BODY, PREDICT_BODY, ROOT, throwaway_bento_home

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Message, Receive, Send], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    body: bytes
    callers: int


CALL_BLOCKS = 300  # --compare-drift: blocks of each state for one scoring call
ONE_CUSTOMER = "1 customer (/v1/customer)"

ROUTES = {
    "livez": Route("GET", "/livez", b"", 16),
    "v1": Route("POST", "/v1/customer", CUSTOMER_BODY.encode(), 16),
    "v2": Route("POST", "/v2/predict", PREDICT_BODY.encode(), 64),
}


def scope_of(route: Route) -> Message:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": route.method, "scheme": "http", "path": route.path,
        "raw_path": route.path.encode(), "root_path": "", "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
            (b"content-length", str(len(route.body)).encode()),
        ],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 3000), "state": {},
    }  # fmt: skip


async def call(app: App, route: Route, statuses: list[int]) -> None:
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": route.body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope_of(route), receive, send)


async def cpu_per_request(app: App, route: Route, requests: int) -> float:
    """Microseconds of this process's CPU per request; every answer must be 200."""
    statuses: list[int] = []
    each = max(1, requests // route.callers)

    async def caller() -> None:
        for _ in range(each):
            await call(app, route, statuses)

    started = time.process_time()
    await asyncio.gather(*(caller() for _ in range(route.callers)))
    spent = time.process_time() - started
    if set(statuses) != {200}:
        raise SystemExit(f"{route.path} answered {sorted(set(statuses))}, not only 200")
    return spent / len(statuses) * 1e6


async def start(app: App) -> asyncio.Task[None]:
    """The lifespan start-up `bentoml serve` runs (the service instance, the dispatchers);
    the task stays pending, as in the server, until the measurement is over."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(lifespan, inbox.get, outbox.put))
    answer = await outbox.get()
    if answer["type"] != "lifespan.startup.complete":
        raise SystemExit(f"the service did not start: {answer}")
    return task


async def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    sys.path.insert(0, str(ROOT))
    import service  # only here, where BENTOML_HOME already names the throw-away store

    app: App = cast(Any, service.ChurnService).to_asgi(is_main=True)
    lifespan = await start(app)
    for route in ROUTES.values():  # warm-up: imports, caches, the batching optimiser
        await cpu_per_request(app, route, 2000)
    if args.drift_ab:
        both = await measure_drift(app, args)
        lifespan.cancel()
        print(json.dumps(both))
        return {}
    if args.profile:
        route = ROUTES[args.profile]
        profile = cProfile.Profile()
        profile.enable()
        await cpu_per_request(app, route, args.requests)
        profile.disable()
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(50)
        return {}
    figures: dict[str, list[float]] = {name: [] for name in ROUTES}
    for _ in range(args.rounds):
        for name, route in ROUTES.items():
            figures[name].append(await cpu_per_request(app, route, args.requests))
    lifespan.cancel()
    return figures


def report(figures: dict[str, list[float]]) -> str:
    median = {name: statistics.median(values) for name, values in figures.items()}
    lines = [
        "route                     CPU µs/request (median)  ÷ /v1/customer",
        *(
            f"{route.method:4} {route.path:<16} @{route.callers:<3} {median[name]:>12.1f}"
            f"  {median[name] / median['v1']:>14.3f}"
            for name, route in ROUTES.items()
        ),
        "per round: " + "  ".join(
            f"{name} " + " ".join(f"{v:.0f}" for v in values) for name, values in figures.items()
        ),
    ]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="requests per route and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians shown")
    parser.add_argument("--profile", choices=sorted(ROUTES), help="cProfile one route instead")
    parser.add_argument(
        "--compare-drift", action="store_true", help="each round with drift profiling on and off"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--drift-ab", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compare_drift:
        return compare_drift(args)
    if args.child:
        figures = asyncio.run(measure(args))
        if figures:
            print(json.dumps(figures))
        return 0
    # The service module reads BENTOML_HOME when it is imported: measure in a child
    # process whose environment names the throw-away store from the start.
    with throwaway_bento_home() as (scratch, env):
        done = run_child(scratch, env, argv or sys.argv[1:])
    if done is None:
        return 1
    if args.profile:
        print(done)
    else:
        print(report(json.loads(done.strip().splitlines()[-1])))
    return 0


def run_child(scratch: Path, env: dict[str, str], argv: list[str]) -> str | None:
    """The measuring child's output, or None (its log's tail printed) if it failed."""
    command = [sys.executable, "-m", "benchmarks.inprocess", "--child", *argv]
    # The access log is written as in production, one line per request, to a file.
    log = scratch / "service.log"
    with log.open("w") as stderr:
        done = subprocess.run(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    if done.returncode != 0:
        print(log.read_text()[-4000:], file=sys.stderr)
        return None
    return done.stdout


def compare_drift(args: argparse.Namespace) -> int:
    """Rounds of each route with live drift profiling on, then off, in one process."""
    with throwaway_bento_home() as (scratch, env):
        argv = ["--requests", str(args.requests), "--rounds", str(args.rounds), "--drift-ab"]
        done = run_child(scratch, env, argv)
    if done is None:
        return 1
    figures = json.loads(done.strip().splitlines()[-1])
    print(
        "CPU µs/request over the rounds, drift profiling on and off: the least (the round "
        "least disturbed by other jobs) and its ratio; the medians and theirs"
    )
    for name, route in ROUTES.items():
        on, off = figures["on"][name], figures["off"][name]
        print(
            f"{route.method:4} {route.path:<16} @{route.callers:<3}"
            f" least {min(on):7.1f} {min(off):7.1f} {min(on) / min(off):6.3f}"
            f"   median {statistics.median(on):7.1f} {statistics.median(off):7.1f}"
            f" {statistics.median(on) / statistics.median(off):6.3f}"
        )
    calls = figures["calls"]
    print("One scoring call (the scorer alone, least of many timings), µs: on, off, added")
    for name, (on_us, off_us) in calls.items():
        print(f"  {name:<24} {on_us:7.2f} {off_us:7.2f} {on_us - off_us:7.2f}")
    # The budget: a /v1/customer request's CPU grows by what profiling adds to
    # its one scoring call; against the least request CPU (the largest share).
    on_us, off_us = calls[ONE_CUSTOMER]
    added, request = on_us - off_us, min(figures["off"]["v1"])
    print(
        f"Profiling's cost to /v1/customer: {added:.2f} µs added to {request:.1f} µs of CPU "
        f"a request = {added / (request + added):.1%} of its throughput (at most 5%)"
    )
    return 0


async def measure_drift(app: App, args: argparse.Namespace) -> dict[str, Any]:
    """The same app, the same scorer object: its class switched between the service's
    profiling scorer and the plain `Scorer` it extends, round after round, so that both
    states meet the same machine. Then the scorer alone, timed the same way."""
    import service
    from churn.record.schema import Customer
    from churn.scoring.scorer import Scorer
    from tests.factories import EXAMPLE_CUSTOMER

    scorer = service._current_predictor().scorer
    states = {"on": type(scorer), "off": Scorer}
    figures: dict[str, Any] = {s: {n: [] for n in ROUTES} for s in states}
    for _ in range(args.rounds):
        for state, kind in states.items():
            scorer.__class__ = kind
            for name, route in ROUTES.items():
                figures[state][name].append(await cpu_per_request(app, route, args.requests))
    customers = {
        ONE_CUSTOMER: [Customer.model_validate(EXAMPLE_CUSTOMER)],
        "64 customers (a batch)": [Customer.model_validate(EXAMPLE_CUSTOMER)] * 64,
    }
    figures["calls"] = {}
    for name, batch in customers.items():
        # Short blocks, alternated hundreds of times: other jobs on the machine only ever
        # add time, and the least of each state is the call itself.
        least = dict.fromkeys(states, float("inf"))
        calls = max(1, 200 // len(batch))
        for _ in range(CALL_BLOCKS):
            for state, kind in states.items():
                scorer.__class__ = kind
                seconds = timeit.timeit(partial(scorer.score_customers, batch), number=calls)
                least[state] = min(least[state], seconds / calls * 1e6)
        figures["calls"][name] = [least["on"], least["off"]]
    scorer.__class__ = states["on"]
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
