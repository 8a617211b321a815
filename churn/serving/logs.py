"""The churn.* loggers: one line per record on stderr, written in batches.

The access log writes a line for every request. Written one at a time, each line is a
system call on the event loop, and in a container a wake-up of the runtime that reads
stderr: at a few thousand requests a second, a few percent of a worker's CPU
(benchmarks/README.md). `BatchedStreamHandler` holds INFO and DEBUG lines for at most
`flush_seconds` (CHURN_LOG_FLUSH_MS), or until `max_lines` are waiting, and writes them
in one go, as nginx's `access_log ... buffer= flush=` does. A WARNING or worse is
written at once, after everything that came before it.

`flush_logs` writes whatever is waiting; the service calls it when a worker shuts down.
uvicorn ends a worker by raising SIGTERM again once it has drained, and a process ended
by a signal runs no exit handlers, so `logging.shutdown` would never write them. A
worker killed outright loses at most `flush_seconds` of access lines.
"""

from __future__ import annotations

import logging
import threading
from typing import TextIO

FORMAT = "%(asctime)s [%(levelname)s] [%(name)s] %(message)s"
ROOT = "churn"


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    def __init__(
        self, stream: TextIO | None = None, *, flush_seconds: float = 0.5, max_lines: int = 512
    ) -> None:
        super().__init__(stream)
        self.flush_seconds = flush_seconds
        self.max_lines = max_lines
        self._waiting: list[str] = []
        self._stopping = threading.Event()
        threading.Thread(target=self._flush_every_interval, name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._waiting.append(self.format(record))
        except Exception:  # logging's contract: a bad record is reported, never raised
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or len(self._waiting) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        # The handler's own (reentrant) lock: `emit` runs under it already, and batches
        # must reach the stream whole and in order.
        with self.lock:  # type: ignore[union-attr]
            if self._waiting:
                self.stream.write("\n".join(self._waiting) + self.terminator)
                self._waiting.clear()
            super().flush()

    def close(self) -> None:
        self._stopping.set()
        self.flush()
        super().close()

    def _flush_every_interval(self) -> None:
        while not self._stopping.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # noqa: S112  a closed or broken stream: try again later
                continue


def flush_logs() -> None:
    for handler in logging.getLogger(ROOT).handlers:
        handler.flush()


def configure_logging(level: str, flush_ms: int = 500) -> None:
    """churn.* loggers to stderr, once per process; BentoML configures only its own."""
    logger = logging.getLogger(ROOT)
    if not logger.handlers:
        handler = (
            BatchedStreamHandler(flush_seconds=flush_ms / 1000)
            if flush_ms > 0
            else logging.StreamHandler()
        )
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
