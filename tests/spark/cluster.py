"""A Spark standalone master and worker on 127.0.0.1, started with Spark's own scripts.

pyspark's package carries Spark's `sbin/spark-daemon.sh`, which the `start-master.sh`
and `start-worker.sh` of a Spark distribution call; they are stopped by the PIDs the
script records, as `stop-master.sh` would, without it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from pyspark.find_spark_home import _find_spark_home

from tests.conftest import free_port, wait_until

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


@dataclass(frozen=True)
class Cluster:
    url: str  # spark://127.0.0.1:PORT
    web: str  # the master's web UI, whose /json/ lists the workers
    logs: Path


def _daemon(env: dict[str, str], *args: str) -> None:
    script = Path(env["SPARK_HOME"]) / "sbin" / "spark-daemon.sh"
    subprocess.run(
        ["bash", str(script), "start", *args], env=env, check=True, capture_output=True, timeout=300
    )


def _alive_workers(web: str) -> int:
    try:
        return int(httpx.get(web + "/json/", timeout=2).json().get("aliveworkers", 0))
    except (httpx.HTTPError, ValueError):
        return 0


@contextmanager
def standalone(folder: Path, *, cores: int = 1, memory: str = "1g") -> Iterator[Cluster]:
    state = {name: folder / name for name in ("pids", "logs", "work")}
    for path in state.values():
        path.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": _find_spark_home(),
        "SPARK_PID_DIR": str(state["pids"]),
        "SPARK_LOG_DIR": str(state["logs"]),
        "SPARK_WORKER_DIR": str(state["work"]),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_IDENT_STRING": "churn-test",
    }
    env.pop("SPARK_NO_DAEMONIZE", None)  # set at all, even empty, it keeps the daemon in front
    port, web_port, worker_web = free_port(), free_port(), free_port()
    url, web = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web_port}"
    try:
        _daemon(env, MASTER, "1", "--host", "127.0.0.1", "--port", str(port),
                "--webui-port", str(web_port))  # fmt: skip
        _daemon(env, WORKER, "1", "--host", "127.0.0.1", "--cores", str(cores),
                "--memory", memory, "--webui-port", str(worker_web), url)  # fmt: skip
        wait_until(lambda: _alive_workers(web) == 1, "a worker registered", timeout=600)
        yield Cluster(url, web, state["logs"])
    finally:
        stop(state["pids"])


def stop(pids: Path) -> None:
    """SIGTERM each daemon by its recorded PID, worker first; wait until each is gone."""
    for pid_file in sorted(pids.glob("*.pid"), key=lambda p: MASTER in p.name):
        pid = int(pid_file.read_text().strip())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 60
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A daemon's parent is gone (nohup), so nothing reaps it: a zombie is stopped.
    status = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    )
    return status not in ("Z", "X")
