"""Live drift: the customers the service scores, profiled in every worker, summed for all.

Every scoring route goes through `Scorer.probabilities` with the model's input matrix:
`ProfilingScorer` counts those rows and their scores into the reference profile's bins
(`churn.monitoring.profile.Binner`) before handing the scores back. service.py
builds the predictor's scorer with `scorer_for`, the one hook in the service.

Each worker counts into a file of its own, mapped into memory, in a directory all the
service's workers share: BentoML's Prometheus multiprocess directory, which `bentoml
serve` empties when it starts (a private temporary directory in a process that is not
a BentoML worker). Counting is a few NumPy operations on that memory, no system call:
a batch is counted at once; a single customer (every /v1/customer request) is binned
at once, and its bin numbers wait in a small buffer to be counted with the next ones,
at most a second (a thread flushes it), so what is reported is at most a second old
(less in the worker that answers, which flushes first). Reading sums every worker's
file, so what two workers scored is what is reported, also what a worker scored before
it was restarted. The files hold counts per bin and nothing else: no customer's values,
ids or scores.

Windows: since the service started, and a rolling window of the last
CHURN_DRIFT_WINDOW_MINUTES minutes (default 60), kept as one row of counts per minute.
A minute's row is zeroed when the clock comes round to it again, and its counts go to
the file's running total first, so "since start" is the total plus every minute's row.

The same figures go to /metrics as gauges (`churn_drift_psi`, `churn_drift_status`,
`churn_drift_customers`), which the same thread refreshes every 15 seconds from the
summed counts; deploy/prometheus/ has alert rules for them.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import hashlib
import logging
import mmap
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from churn.model.artifact import ModelMetadata
from churn.model.booster import TreeModel
from churn.monitoring.drift import STATUS_CODES, THRESHOLDS, compare
from churn.monitoring.profile import (
    Binner,
    ReferenceProfile,
    input_columns,
    no_reference_message,
    reference_of,
)
from churn.record.answers import DriftReport, FeatureDrift, RollingDrift, WindowDrift
from churn.record.errors import ChurnError
from churn.scoring.scorer import Scorer

if TYPE_CHECKING:
    from prometheus_client import Gauge

LOG = logging.getLogger("churn.drift")
SUBDIRECTORY = "churn-drift"
PATTERN = "worker-*.counts"
PENDING_ROWS = 256
FLUSH_SECONDS = 1.0  # how long a single customer may wait to be counted
GAUGE_SECONDS = 15.0
_MAGIC = 0x43484452_49465431  # "CHDRIFT1"
_HEADER = 8  # magic, width, slots, fingerprint, started (ms), pid, 0, 0


class ProfilingOff(ChurnError):
    status_code = 409
    code = "drift_profiling_off"


@dataclass(frozen=True)
class Counts:
    since_start: np.ndarray
    rolling: np.ndarray
    workers: int
    started: float  # seconds since the epoch


class LiveProfile:
    """This worker's counts per bin: in memory shared with the other workers through a file."""

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
        self.directory = directory
        self.minutes = window_minutes
        self.fingerprint = int.from_bytes(
            hashlib.sha256(binner.edges.tobytes()).digest()[:8], "little", signed=True
        )
        width, slots = binner.width, window_minutes
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"worker-{os.getpid()}-{time.time_ns()}.counts"
        size = 8 * (_HEADER + slots + width + slots * width)
        with self.path.open("x+b") as handle:
            handle.truncate(size)
            self._map = mmap.mmap(handle.fileno(), size)
        data = np.frombuffer(self._map, dtype=np.int64)
        header = (_MAGIC, width, slots, self.fingerprint, int(clock() * 1000), os.getpid())
        data[: len(header)] = header
        self._stamps = data[_HEADER : _HEADER + slots]
        self._archive = data[_HEADER + slots : _HEADER + slots + width]
        self._slots = data[_HEADER + slots + width :].reshape(slots, width)
        self._lock = threading.Lock()
        self._minute = -1
        self._current: np.ndarray = self._slots[0]
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

    def _slot(self) -> np.ndarray:
        minute = int(self.clock()) // 60
        if minute != self._minute:
            index = minute % len(self._stamps)
            if self._stamps[index] != minute:
                self._archive += self._slots[index]
                self._slots[index] = 0
                self._stamps[index] = minute
            self._minute, self._current = minute, np.asarray(self._slots[index])
        return self._current

    def read(self) -> Counts:
        """Every worker's counts summed: since start, and over the rolling window."""
        self.flush()
        now = int(self.clock()) // 60
        # This worker's own counts from its memory: its file may be gone (another
        # `bentoml serve` on the same BENTOML_HOME empties the shared directory).
        sources = [np.frombuffer(self._map, dtype=np.int64)]
        sources += [
            np.fromfile(path, dtype=np.int64)
            for path in sorted(self.directory.glob(PATTERN))
            if path != self.path
        ]
        since_start = np.zeros(self.binner.width, dtype=np.int64)
        rolling = np.zeros(self.binner.width, dtype=np.int64)
        workers, started = 0, self.clock()
        for data in sources:
            parsed = self._parse(data)
            if parsed is None:
                continue  # being created, or another model's or window's counts
            stamps, archive, slots, began = parsed
            counted = archive + slots.sum(axis=0)
            since_start += counted
            rolling += slots[(stamps > now - self.minutes) & (stamps <= now)].sum(axis=0)
            workers += bool(counted.any())
            started = min(started, began)
        return Counts(since_start, rolling, workers, started)

    def _parse(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
        width, slots = self.binner.width, self.minutes
        if len(data) != _HEADER + slots + width + slots * width:
            return None
        if tuple(data[:4]) != (_MAGIC, width, slots, self.fingerprint):
            return None
        return (
            data[_HEADER : _HEADER + slots],
            data[_HEADER + slots : _HEADER + slots + width],
            data[_HEADER + slots + width :].reshape(slots, width),
            float(data[4]) / 1000,
        )

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
            since=dt.datetime.fromtimestamp(counts.started, dt.UTC).isoformat(timespec="seconds"),
            workers=counts.workers,
            rolling=RollingDrift(minutes=self.minutes, **rolling.model_dump()),
            thresholds=THRESHOLDS,
        )


class ProfilingScorer(Scorer):
    """A `Scorer` that counts every customer it scores into the live profile."""

    def __init__(
        self, model: TreeModel, metadata: ModelMetadata, live: LiveProfile, *, bulk_threads: int = 1
    ) -> None:
        super().__init__(
            model, metadata.threshold, label_rule=metadata.label_rule, bulk_threads=bulk_threads
        )
        self.live = live

    def observe(self, matrix: np.ndarray, scores: np.ndarray) -> None:
        if len(scores):
            self.live.observe(matrix, scores)


def scorer_for(
    model: TreeModel,
    metadata: ModelMetadata,
    *,
    profiling: bool,
    window_minutes: int,
    bulk_threads: int = 1,
) -> Scorer:
    """The service's scorer: profiling (CHURN_DRIFT_PROFILING, over a rolling window of
    CHURN_DRIFT_WINDOW_MINUTES), unless turned off or the model has no profile."""
    if not profiling or not metadata.reference_profile:
        return Scorer(
            model, metadata.threshold, label_rule=metadata.label_rule, bulk_threads=bulk_threads
        )
    profile = reference_of(metadata)
    binner = Binner(profile, input_columns(model))
    live = LiveProfile(profile, binner, shared_directory(), window_minutes)
    Flusher(live, metadata.model_version).start()
    atexit.register(live.flush)
    return ProfilingScorer(model, metadata, live, bulk_threads=bulk_threads)


def live_report(scorer: Scorer, metadata: ModelMetadata) -> DriftReport:
    """GET /v2/drift's answer for the service's scorer."""
    if not metadata.reference_profile:
        return no_reference_report(metadata)
    if not isinstance(scorer, ProfilingScorer):
        raise ProfilingOff(
            "Live drift profiling is off in this service (CHURN_DRIFT_PROFILING=false)."
        )
    return scorer.live.report(metadata.model_version)


def no_reference_report(metadata: ModelMetadata) -> DriftReport:
    """/v2/drift for a model without a reference profile: a 200 that says so, no figures.
    Nothing was counted, so the windows are empty."""
    empty = FeatureDrift(psi=None, status="insufficient", bins=[], reference=[], current=[])
    window = WindowDrift(customers=0, features={}, score=empty, drifted=[])
    return DriftReport(
        **window.model_dump(),
        model_version=metadata.model_version,
        reference=False,
        message=no_reference_message(metadata),
        since=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        workers=0,
        rolling=RollingDrift(minutes=0, **window.model_dump()),
        thresholds=THRESHOLDS,
    )


@functools.cache
def shared_directory() -> Path:
    """Where the workers of this `bentoml serve` keep their counts."""
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if shared:
        return Path(shared) / SUBDIRECTORY
    private = Path(tempfile.mkdtemp(prefix="churn-drift-"))
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    return private


# /metrics ---------------------------------------------------------------------------


@functools.cache
def gauges() -> tuple[Gauge, Gauge, Gauge]:
    # Imported here, in the worker: see churn.serving.fastpath.batch_sizes. Every worker sets
    # the same values, from the summed counts; the newest one is reported.
    import prometheus_client

    labels = ("feature", "window")
    return (
        prometheus_client.Gauge(
            "churn_drift_psi",
            "Population stability index of a feature (or feature=score, the model's "
            "score) against the training data; NaN with no customers.",
            labels,
            multiprocess_mode="mostrecent",
        ),
        prometheus_client.Gauge(
            "churn_drift_status",
            "Drift status: 0 ok (PSI < 0.1), 1 warn (< 0.25), 2 drift, "
            "-1 too few customers in the window (< 100).",
            labels,
            multiprocess_mode="mostrecent",
        ),
        prometheus_client.Gauge(
            "churn_drift_customers",
            "Customers scored in the window (since_start, or the rolling window).",
            ("window",),
            multiprocess_mode="mostrecent",
        ),
    )


def set_gauges(report: DriftReport) -> None:
    psi, status, customers = gauges()
    windows: dict[str, WindowDrift] = {"since_start": report, "rolling": report.rolling}
    for window, drift in windows.items():
        customers.labels(window=window).set(drift.customers)
        for name, result in [*drift.features.items(), ("score", drift.score)]:
            value = float("nan") if result.psi is None else result.psi
            psi.labels(feature=name, window=window).set(value)
            status.labels(feature=name, window=window).set(STATUS_CODES[result.status])


class Flusher(threading.Thread):
    """Counts the waiting customers every second and sets the gauges every 15 seconds."""

    def __init__(self, live: LiveProfile, model_version: str) -> None:
        super().__init__(name="churn-drift", daemon=True)
        self.live = live
        self.model_version = model_version

    def run(self) -> None:
        gauges_due = 0.0
        while True:
            try:
                self.live.flush()
                if time.monotonic() >= gauges_due:
                    set_gauges(self.live.report(self.model_version))
                    gauges_due = time.monotonic() + GAUGE_SECONDS
            except Exception:  # a count or gauge late must not end the worker
                LOG.exception("could not count the drift profile or set its gauges")
            time.sleep(FLUSH_SECONDS)
