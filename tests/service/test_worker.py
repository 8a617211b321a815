from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# Run in a child process: importing service.py configures logging and tracing for the
# whole process, as it does in a worker.
WORKER = """
import service

instance = service.ChurnService.inner()
for name in service.ChurnService.apis:
    wrapper = getattr(instance, name)
    assert name in vars(instance), f"{name}: not stored on the instance"
    assert getattr(instance, name) is wrapper, f"{name}: built again on lookup"
    assert wrapper.local is wrapper, f"{name}: not BentoML's local caller"
print(sorted(service.ChurnService.apis))
"""


def last_line_of(script: str, store: Path) -> str:
    """What `script` prints last, run as a worker runs: in a process of its own."""
    env = {**os.environ, "BENTOML_HOME": str(store)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_worker_builds_each_api_method_wrapper_once(bundled_store: Path) -> None:
    assert last_line_of(WORKER, bundled_store) == "['explain', 'predict']"


BATCHING = """
import asyncio, gc
from benchmarks.inprocess import ROUTES, cpu_per_request, start
import service

async def main():
    app = service.ChurnService.to_asgi(is_main=True)
    lifespan = await start(app)
    await cpu_per_request(app, ROUTES["v2"], 640)  # warm-up: imports, the batching optimiser
    collections = []
    gc.callbacks.append(lambda phase, info: phase == "stop" and collections.append(info))
    await cpu_per_request(app, ROUTES["v2"], 6400)
    lifespan.cancel()
    print(len(collections))

asyncio.run(main())
"""


def test_requests_waiting_for_a_batch_do_not_set_off_the_garbage_collector(
    bundled_store: Path,
) -> None:
    # 64 callers of /v2/predict, each waiting for its batch: at Python's default
    # threshold (700) the collector ran 817 times in 6,400 requests, each time finding
    # nothing that reference counting would not free.
    assert int(last_line_of(BATCHING, bundled_store)) <= 5
