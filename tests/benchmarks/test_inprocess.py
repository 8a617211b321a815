from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_in_process_benchmark_drives_every_route_of_the_real_app() -> None:
    # A few requests a route: this checks the tool works (it stops unless every answer
    # is 200), not how fast anything is.
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", "--rounds", "1", "--requests", "64"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    rows = {line.split()[1]: line.split() for line in done.stdout.splitlines()[2:5]}
    assert set(rows) == {"/livez", "/v1/customer", "/v2/predict"}
    assert all(float(row[-2]) > 0 for row in rows.values())
    # The last column is each route's CPU over /v1/customer's (from unrounded medians).
    v1 = float(rows["/v1/customer"][-2])
    for row in rows.values():
        assert float(row[-1]) == pytest.approx(float(row[-2]) / v1, abs=2e-3), row


@pytest.mark.slow
def test_the_drift_profiling_comparison_measures_both_states() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", "--compare-drift", "--rounds", "1",
         "--requests", "64"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("CPU µs/request"))
    rows = {line.split()[1]: line.split() for line in lines[header + 1 : header + 4]}
    assert set(rows) == {"/livez", "/v1/customer", "/v2/predict"}
    assert all(float(row[4]) > 0 and float(row[5]) > 0 for row in rows.values())
    # The row: what profiling adds to a /v1/customer request, as a share.
    cost = re.fullmatch(
        r"Profiling's cost to /v1/customer: (-?[\d.]+) µs added to ([\d.]+) µs of CPU a "
        r"request = (-?[\d.]+)% of its throughput \(at most 5%\)",
        lines[-1],
    )
    assert cost, lines[-1]
    added, request, share = map(float, cost.groups())
    assert share == pytest.approx(100 * added / (request + added), abs=0.06)
