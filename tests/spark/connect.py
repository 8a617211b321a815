"""A Spark Connect server on 127.0.0.1, started with Spark's own launcher (spark-submit
and its `SparkConnectServer` class, in pyspark 4.x's jars, as `sbin/start-connect-server.sh`
runs it) and stopped by its PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.find_spark_home import _find_spark_home

from tests.conftest import free_port, stop, wait_until

SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"
MASTER = "local[2]"  # the server's, so that a run can tell it used the server's session


def available() -> bool:
    """Whether this pyspark carries the server (4.x does; 3.5's is a separate package)."""
    return any((Path(_find_spark_home()) / "jars").glob("spark-connect_*.jar"))


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def connect_server(folder: Path) -> Iterator[str]:
    """The server's `sc://` address; its own catalog keeps tables under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    bin_dir = Path(sys.executable).parent
    command = [
        str(bin_dir / "spark-submit"), "--master", MASTER, "--class", SERVER,
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.sql.warehouse.dir={folder / 'warehouse'}",
        "--conf", f"spark.pyspark.python={sys.executable}",
    ]  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    with (folder / "server.log").open("wb") as log:
        server = subprocess.Popen(
            command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(
            lambda: server.poll() is not None or _listening(port),
            "the Spark Connect server listening", timeout=300,
        )  # fmt: skip
        assert server.poll() is None, (folder / "server.log").read_text()[-3000:]
        yield f"sc://127.0.0.1:{port}"
    finally:
        stop(server, timeout=60)
