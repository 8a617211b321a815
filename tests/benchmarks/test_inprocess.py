"""benchmarks.inprocess: what it drives, what it counts, and how its tables are made.

The figures themselves are the machine's; what is checked is that the tool measures the
route it names, divides by the requests it made, and prints each figure from the
measurements it belongs to (no timing thresholds).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
import time

import pytest

from benchmarks.inprocess import ROUTES, Message, Receive, Send, cpu_per_request, report
from tests.conftest import ROOT

BURN_SECONDS = 0.002  # of CPU, per request, in `Burner`


class Burner:
    """An ASGI app that spends a known least CPU on each request and keeps what it got."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        body = (await receive())["body"]
        started = time.process_time()
        while time.process_time() - started < BURN_SECONDS:
            pass
        self.requests.append((scope["method"], scope["path"], body))
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_a_route_is_driven_as_named_and_its_cpu_divided_by_its_requests() -> None:
    app, route = Burner(), ROUTES["v2"]

    micros = asyncio.run(cpu_per_request(app, route, 128))

    assert app.requests == [(route.method, route.path, route.body)] * 128
    # Each request burnt at least BURN_SECONDS of this process's CPU; a figure per
    # request below that was divided by more requests than were made.
    assert micros >= BURN_SECONDS * 1e6


def test_a_route_that_does_not_answer_200_stops_the_measurement() -> None:
    with pytest.raises(SystemExit, match=r"^/livez answered \[503\], not only 200$"):
        asyncio.run(cpu_per_request(Burner(503), ROUTES["livez"], 16))


def test_the_table_shows_each_routes_median_and_its_ratio_to_v1_customer() -> None:
    # Medians 20, 200 and 50, each unlike its route's mean; every route's figure differs.
    figures = {"livez": [10.0, 60.0, 20.0], "v1": [200.0, 100.0, 600.0], "v2": [50.0, 40.0, 90.0]}

    lines = report(figures).splitlines()

    rows = {line.split()[1]: line.split()[-2:] for line in lines[1:4]}
    assert rows == {
        "/livez": ["20.0", "0.100"],
        "/v1/customer": ["200.0", "1.000"],
        "/v2/predict": ["50.0", "0.250"],
    }
    assert lines[4] == "per round: livez 10 60 20  v1 200 100 600  v2 50 40 90"


def run_inprocess(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", *args, "--requests", "64"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.slow
def test_the_in_process_benchmark_drives_every_route_of_the_real_app() -> None:
    # A few requests a route: this checks the tool works on the service's own app (it
    # stops unless every answer is 200), not how fast anything is.
    lines = run_inprocess("--rounds", "3")

    header = next(i for i, line in enumerate(lines) if line.startswith("route "))
    rows = {line.split()[1]: line.split() for line in lines[header + 1 : header + 4]}
    assert set(rows) == {"/livez", "/v1/customer", "/v2/predict"}
    per_round = lines[header + 4].removeprefix("per round: ")
    rounds = dict(re.findall(r"(\w+) ((?:\d+ ?){3})", per_round))
    for name, route in ROUTES.items():
        measured = [float(value) for value in rounds[name].split()]
        assert all(value > 0 for value in measured), per_round
        # The table's figure is its own route's median round (rounds printed to 1 µs).
        assert float(rows[route.path][-2]) == pytest.approx(statistics.median(measured), abs=0.6)


@pytest.mark.slow
def test_the_drift_profiling_comparison_measures_both_states() -> None:
    lines = run_inprocess("--compare-drift", "--rounds", "1")

    header = next(i for i, line in enumerate(lines) if line.startswith("CPU µs/request"))
    rows = {line.split()[1]: line.split() for line in lines[header + 1 : header + 4]}
    assert set(rows) == {"/livez", "/v1/customer", "/v2/predict"}
    assert all(float(row[4]) > 0 and float(row[5]) > 0 for row in rows.values())
    first_call = next(i for i, line in enumerate(lines) if line.startswith("One scoring call"))
    calls = {
        name: figures
        for name, *figures in (
            line.strip().rsplit(maxsplit=3) for line in lines[first_call + 1 : -1]
        )
    }
    assert set(calls) == {"1 customer (/v1/customer)", "64 customers (a batch)"}
    # The row: what profiling adds to a /v1/customer request, as a share.
    cost = re.fullmatch(
        r"Profiling's cost to /v1/customer: (-?[\d.]+) µs added to ([\d.]+) µs of CPU a "
        r"request = (-?[\d.]+)% of its throughput \(at most 5%\)",
        lines[-1],
    )
    assert cost, lines[-1]
    added, request, share = cost.groups()
    # Made of the figures it names: one customer's scoring call, and /v1/customer's
    # least request CPU with profiling off, as the tables above print them.
    assert added == calls["1 customer (/v1/customer)"][2]
    assert request == rows["/v1/customer"][5]
    # Requests a second with profiling on, against without: 1/(request+added) : 1/request.
    lost = 1 - (1 / (float(request) + float(added))) / (1 / float(request))
    assert float(share) == pytest.approx(100 * lost, abs=0.06)
