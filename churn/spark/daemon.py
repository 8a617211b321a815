"""pyspark's Python worker daemon, with the scoring modules loaded before it forks.

An executor starts one daemon (`spark.python.daemon.module`, set by
`churn.spark.session.start`), which forks a Python worker for each task it runs at
once. pyspark's own daemon forks them bare, and each then imports pandas, Arrow and
XGBoost for itself: the largest fixed cost of a local job once the rows stay out of the
JVM (benchmarks/README.md). This one imports them once, before any fork, so every
worker starts with them loaded.

Executors score with the model's booster file (`churn.model.booster`), not its pickle,
so they need no scikit-learn; but XGBoost imports it whenever it is installed, for its
scikit-learn-style estimators, and with it SciPy's statistics: 2.3 of the daemon's 4.8
CPU-seconds. The daemon marks scikit-learn as absent before XGBoost loads, so XGBoost
takes its own branch for a machine without it, and a worker that did try to import
scikit-learn would fail at once, by name. `tests/spark/test_daemon.py` checks that
XGBoost still loads and predicts this way.

In local mode the imports need not wait for the JVM at all: the driver starts a
preloaded process (`python -m churn.spark.daemon --preload SOCKET`) as it starts the
JVM, and the daemon the JVM later launches hands it its standard streams, environment
and working folder over that Unix socket (in a folder only this user reads); the
preloaded process forks, and its child becomes the daemon, with the JVM's streams and
settings. The launched process stays until that child ends and passes Spark's SIGTERM
on to it. Without the socket (on a cluster's executors, or if the preloaded process is
gone) the daemon imports for itself.

pyspark forks bare because a thread running at a fork is not copied and may hold a
lock the child then waits for. The only thread these imports start is jemalloc's
background thread (pyarrow's allocator), which jemalloc's own fork handlers stop and
restart around the fork; OpenBLAS is kept to the calling thread so that numpy starts no
pool of its own. Nothing here runs a computation before the fork.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import sys
from types import FrameType

PRELOAD_SOCKET = "CHURN_SPARK_PRELOADED"  # set by the driver for its JVM to pass on
PRELOADED = ("pyspark.daemon", "pyspark.worker", "churn.spark.job", "churn.scoring.scorer")
NOT_NEEDED = ("sklearn",)
_STREAMS = 3  # stdin, stdout, stderr
_MESSAGE_BYTES = 1 << 20


def preload() -> None:
    # Before numpy loads OpenBLAS, which would otherwise start its threads at import.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    for name in NOT_NEEDED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    for name in PRELOADED:
        importlib.import_module(name)


def main() -> None:
    path = os.environ.get(PRELOAD_SOCKET)
    if path and _hand_over(path):
        return
    preload()
    from pyspark import daemon

    daemon.manager()


def _hand_over(path: str) -> bool:
    """Have the preloaded process become this daemon; False if it is not there."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
    except OSError:
        connection.close()
        return False
    state = {"environ": dict(os.environ), "cwd": os.getcwd()}
    socket.send_fds(connection, [json.dumps(state).encode()], list(range(_STREAMS)))
    reply = connection.recv(64)
    if not reply:
        return False
    child = int(reply)

    def forward(number: int, _: FrameType | None) -> None:
        os.kill(child, number)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while connection.recv(64):  # the daemon, and its workers, hold the other end
        pass
    return True


def serve(path: str) -> None:
    """The preloaded process: listen at `path`, import, then fork a daemon per request;
    end when the driver closes this process's stdin (or ends)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    server = os.getpid()
    try:
        preload()
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the system
        _accept(listener)
    finally:
        if os.getpid() == server:
            # The socket's folder too, for a driver that was killed before it could.
            with contextlib.suppress(OSError):
                os.unlink(path)
                os.rmdir(os.path.dirname(path))
    os._exit(0)  # no interpreter teardown of all those modules


def _accept(listener: socket.socket) -> None:
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
            return  # the driver is done
        if listener in ready:
            connection, _ = listener.accept()
            message, streams, _, _ = socket.recv_fds(connection, _MESSAGE_BYTES, _STREAMS)
            if os.fork() == 0:
                listener.close()
                _become_daemon(connection, json.loads(message), streams)
            for stream in streams:
                os.close(stream)
            connection.close()


def _become_daemon(connection: socket.socket, state: dict[str, object], streams: list[int]) -> None:
    for target, stream in enumerate(streams):
        os.dup2(stream, target)
        os.close(stream)
    environ = state["environ"]
    assert isinstance(environ, dict)
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(str(state["cwd"]))
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    connection.sendall(str(os.getpid()).encode())
    from pyspark import daemon

    try:
        daemon.manager()
    finally:
        os._exit(0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--preload"]:
        serve(sys.argv[2])
    else:
        main()
