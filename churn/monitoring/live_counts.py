"""Live drift, counted: one worker's counts per bin over windows of the clock.

Counting. Each worker counts in its own memory: a few NumPy operations, no system call.
A batch is counted at once; a single customer (every /v1/customer request) is binned at
once, and its bin numbers wait in a small buffer to be counted with the next ones, at
most a second (`churn.monitoring.live_gauges.Flusher` flushes it). Reading sums this
worker's memory and every other worker's file (`churn.monitoring.live_files`), so what
two workers scored is what is reported, also what a worker scored before it was
restarted (up to its last second).

Windows, and what is shown. A window is CHURN_DRIFT_WINDOW_MINUTES minutes (default 60)
of the clock, counted from the Unix epoch, so 60 is each clock hour (UTC) and 15 each
quarter; the counts of the window still open are never shown. `rolling` is the last
window that closed, and `since_start` every window closed since the service started. In
each worker, the counts of a closed window with fewer than `MIN_CUSTOMERS` customers are
left out of both for good. So every figure the service publishes is a sum of whole
worker-windows of at least `MIN_CUSTOMERS` customers each, and changes only when a window
closes; two readings, or any number, differ by whole such worker-windows, and a reader who
differences them learns at best the bins of `MIN_CUSTOMERS` or more customers together,
never one customer's. Rounding alone could not give that: one customer more moves a
bin's share by 1/n, and either some rounded share moves with it (and shows the bin) or
the rounding is too coarse to read, and a reader who can time requests can push a share
to a rounding edge. Under the minimum (drift.MIN_CUSTOMERS) a window shows its count, no
PSI and no share. What the minimum cannot stop: a client with a key who sends all but one
of a worker-window's customers, and knows them, can subtract them from that window; only
noise added to the counts would stop that, at the cost of every figure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from churn.monitoring.drift import MIN_CUSTOMERS, THRESHOLDS, compare
from churn.monitoring.live_files import NOT_A_WINDOW, ROWS, Layout, WorkerFiles
from churn.monitoring.profile import Binner, ReferenceProfile
from churn.record.answers import DriftReport, RollingDrift

PENDING_ROWS = 256


@dataclass(frozen=True)
class Counts:
    since_start: np.ndarray
    rolling: np.ndarray
    workers: int
    started: float  # seconds since the epoch
    until: float  # when the window shown as rolling closed, seconds since the epoch


class LiveProfile:
    """This worker's counts per bin, in its memory, published for the other workers."""

    def __init__(
        self,
        profile: ReferenceProfile,
        binner: Binner,
        directory: Path,
        window_minutes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.profile = profile
        self.clock = clock
        self.binner = binner
        self.minutes = window_minutes
        fingerprint = int.from_bytes(
            hashlib.sha256(binner.edges.tobytes()).digest()[:8], "little", signed=True
        )
        self.layout = Layout.of(binner.width)
        self.files = WorkerFiles(directory, self.layout, window_minutes, fingerprint, clock)
        self.path = self.files.path
        self._data = np.zeros(self.layout.size, dtype=np.int64)
        header = (*self.files.identity, int(clock() * 1000), os.getpid())
        self._data[: len(header)] = header
        self._stamps = self._data[self.layout.stamps]
        self._stamps[:] = NOT_A_WINDOW
        self._rows = self._data[self.layout.rows].reshape(ROWS, binner.width)
        self._archive = self._data[self.layout.archive]
        self._lock = threading.Lock()
        self._window = NOT_A_WINDOW
        self._current: np.ndarray = self._rows[0]
        self._changes = 0  # counted batches, so the file is written only when it changed
        self._published = -1
        # One customer's score and values, shifted: the score first, then the matrix's.
        self._row = np.empty(binner.columns, dtype=np.float64)
        self._values, self._shift = self._row[1:], binner.shift[1:]
        # Single customers' bins wait here (bin numbers only) to be counted together.
        self._pending = np.empty((PENDING_ROWS, binner.columns), dtype=np.intp)
        self._waiting = 0

    def observe(self, matrix: np.ndarray, scores: np.ndarray) -> None:
        """Count the rows of the model's input matrix and their scores."""
        binner = self.binner
        if len(scores) == 1:
            # Every /v1/customer request: a few NumPy calls on preallocated arrays; the
            # bins are counted with the next customers' (`flush`).
            with self._lock:
                self._row[0] = scores[0]
                self._values[:] = matrix[0]
                self._values += self._shift
                self._pending[self._waiting] = binner.edges.searchsorted(self._row, "right")
                self._waiting += 1
                if self._waiting == PENDING_ROWS:
                    self._count_pending()
            return
        counts = binner.counts(matrix, scores)
        with self._lock:
            current = self._slot()
            current += counts
            self._changes += 1

    def flush(self) -> None:
        """Count the single customers still waiting: every second, and before a read."""
        with self._lock:
            self._count_pending()

    def _count_pending(self) -> None:
        if self._waiting:
            current = self._slot()
            current += np.bincount(
                self._pending[: self._waiting].ravel(), minlength=self.binner.width
            )
            self._waiting = 0
            self._changes += 1

    def _now(self) -> int:
        """The window open now, by its number since the epoch."""
        return int(self.clock()) // (60 * self.minutes)

    def _slot(self) -> np.ndarray:
        window = self._now()
        if window != self._window:
            index = window % ROWS
            if self._stamps[index] != window:
                # It holds a window closed before the last one: kept for `since_start`
                # if it has enough customers to show, left out for good if not.
                row = self._rows[index]
                if self.binner.customers(row) >= MIN_CUSTOMERS:
                    self._archive += row
                row[:] = 0
                self._stamps[index] = window
            self._window, self._current = window, self._rows[index]
        return self._current

    def publish(self) -> None:
        """Write this worker's counts for the others, if they changed or the file did."""
        with self._lock:
            self._count_pending()
            if self._changes == self._published and self.files.intact():
                return
            data, changes = self._data.tobytes(), self._changes
        if self.files.publish(data):
            self._published = changes

    def read(self) -> Counts:
        """What is shown (module docstring): every worker's counts of closed windows."""
        with self._lock:
            self._count_pending()
            sources = [self._data.copy()]  # this worker's own, from its memory
        sources += self.files.others(self._now)
        now = self._now()
        layout, customers = self.layout, self.binner.customers
        since_start = np.zeros(layout.width, dtype=np.int64)
        rolling = np.zeros(layout.width, dtype=np.int64)
        workers, started = 0, self.clock()
        for data in sources:
            stamps = data[layout.stamps]
            rows = data[layout.rows].reshape(ROWS, layout.width)
            since_start += data[layout.archive]
            for stamp, row in zip(stamps.tolist(), rows, strict=True):
                if NOT_A_WINDOW < stamp < now and customers(row) >= MIN_CUSTOMERS:
                    since_start += row
                    if stamp == now - 1:
                        rolling += row
            workers += bool(data[layout.rows].any() or data[layout.archive].any())
            started = min(started, float(data[4]) / 1000)
        return Counts(since_start, rolling, workers, started, now * 60.0 * self.minutes)

    def report(self, model_version: str) -> DriftReport:
        counts = self.read()
        binner, profile = self.binner, self.profile
        since_start = compare(
            profile, binner.split(counts.since_start), binner.customers(counts.since_start)
        )
        rolling = compare(profile, binner.split(counts.rolling), binner.customers(counts.rolling))
        return DriftReport(
            **since_start.model_dump(),
            model_version=model_version,
            since=utc(counts.started),
            workers=counts.workers,
            rolling=RollingDrift(
                minutes=self.minutes, until=utc(counts.until), **rolling.model_dump()
            ),
            thresholds=THRESHOLDS,
        )


def utc(seconds: float) -> str:
    """A time as the drift report gives it: ISO 8601 in UTC, to the second."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")
