from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.run import start, waited_cpu_seconds
from tests.conftest import wait_until

# Spends `seconds` of CPU, then says so and stays alive until it is stopped.
BURN = """
import sys, time
started = time.process_time()
while time.process_time() - started < {seconds}:
    pass
print("burnt", flush=True)
time.sleep(120)
"""


def test_a_servers_cpu_includes_the_workers_it_started(tmp_path: Path) -> None:
    # Like `bentoml serve`: an idle supervisor whose worker does the work.
    worker = [sys.executable, "-c", BURN.format(seconds=0.4)]
    supervisor = f"import subprocess; subprocess.run({worker!r})"
    server = start("burner", [sys.executable, "-c", supervisor], {}, tmp_path)
    try:
        wait_until(lambda: "burnt" in server.log.read_text(), "the worker spent its CPU")
        assert server.cpu_seconds() >= 0.4
    finally:
        server.stop()


def test_the_cpu_of_waited_children_is_counted() -> None:
    before = waited_cpu_seconds()
    subprocess.run(
        [sys.executable, "-c", BURN.format(seconds=0.3).replace("time.sleep(120)", "")],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    assert waited_cpu_seconds() - before >= 0.3
