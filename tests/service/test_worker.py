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


def test_a_worker_builds_each_api_method_wrapper_once(bundled_store: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(bundled_store)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "['explain', 'predict']"
