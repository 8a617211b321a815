"""Live drift: the customers the service scores, profiled in every worker, summed for all.

Every scoring route goes through `Scorer.probabilities` with the model's input matrix:
`ProfilingScorer` counts those rows and their scores into the reference profile's bins
(`churn.monitoring.profile.Binner`) before handing the scores back. service.py
builds the predictor's scorer with `scorer_for`, the one hook in the service.

Counting. Each worker counts in its own memory: a few NumPy operations, no system call.
A batch is counted at once; a single customer (every /v1/customer request) is binned at
once, and its bin numbers wait in a small buffer to be counted with the next ones, at
most a second (a thread flushes it). Scoring never depends on drift: a count that fails
is logged and dropped, never the answer and never the worker.

Sharing. The same thread publishes the worker's counts once a second, when they changed,
as a file of its own (`worker-<pid>-<ns>.counts`, 0600) in a directory of this service
instance's own (0700): `churn-drift/serve-<host>-<arbiter pid>-<its start>/` beside
BentoML's Prometheus multiprocess directory, which a second `bentoml serve` on the same
BENTOML_HOME empties when it starts (so the drift files are kept out of it), and which the
workers of one `bentoml serve` share by their parent, the arbiter. A file is written whole
and renamed into place, so nobody can truncate or rewrite the memory a worker counts in,
and a full or read-only disk costs the other workers' view of this one's counts, nothing
else. Reading sums this worker's memory and every other file in the directory, so what two
workers scored is what is reported, also what a worker scored before it was restarted (up
to its last second). A file is read only if it is this service's own: a regular file (opened
without following a link, and without waiting, so a FIFO cannot hold a reader), of this
user, of the exact size, with this profile's header and counts that can be counts;
anything else is skipped with a warning. The files hold counts per bin and nothing else:
no customer's values, ids or scores.

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

The same figures go to /metrics as gauges (`churn_drift_psi`, `churn_drift_status`,
`churn_drift_customers`, labelled with the window and its minutes), which the same thread
refreshes every 15 seconds; deploy/prometheus/ has alert rules for them.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import functools
import hashlib
import logging
import os
import re
import shutil
import socket
import stat
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
from churn.monitoring.drift import MIN_CUSTOMERS, STATUS_CODES, THRESHOLDS, compare
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
FILE_NAME = re.compile(r"^worker-\d+-\d+\.counts$")
PENDING_ROWS = 256
FLUSH_SECONDS = 1.0  # how long a single customer may wait to be counted, and published
GAUGE_SECONDS = 15.0
_MAGIC = 0x43484452_49465432  # "CHDRIFT2"
_HEADER = 8  # magic, width, minutes, fingerprint, started (ms), pid, 0, 0
_ROWS = 2  # the window open now and the last one closed
_NOT_A_WINDOW = -1
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WARNED_AT_MOST = 1000


class ProfilingOff(ChurnError):
    status_code = 409
    code = "drift_profiling_off"


class DriftUnavailable(ChurnError):
    status_code = 503
    code = "drift_unavailable"


@dataclass(frozen=True)
class Counts:
    since_start: np.ndarray
    rolling: np.ndarray
    workers: int
    started: float  # seconds since the epoch
    until: float  # when the window shown as rolling closed, seconds since the epoch


@dataclass(frozen=True)
class _Layout:
    """Where each part lies in a worker's counts (its memory, and its file)."""

    width: int
    stamps: slice
    rows: slice
    archive: slice
    size: int  # int64 values

    @classmethod
    def of(cls, width: int) -> _Layout:
        rows = _HEADER + _ROWS
        archive = rows + _ROWS * width
        return cls(
            width,
            slice(_HEADER, rows),
            slice(rows, archive),
            slice(archive, archive + width),
            archive + width,
        )


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
        self.directory = directory
        self.minutes = window_minutes
        self.fingerprint = int.from_bytes(
            hashlib.sha256(binner.edges.tobytes()).digest()[:8], "little", signed=True
        )
        self.layout = _Layout.of(binner.width)
        self.path = directory / f"worker-{os.getpid()}-{time.time_ns()}.counts"
        self._data = np.zeros(self.layout.size, dtype=np.int64)
        header = (
            _MAGIC, binner.width, window_minutes, self.fingerprint, int(clock() * 1000),
            os.getpid(),
        )  # fmt: skip
        self._data[: len(header)] = header
        self._stamps = self._data[self.layout.stamps]
        self._stamps[:] = _NOT_A_WINDOW
        self._rows = self._data[self.layout.rows].reshape(_ROWS, binner.width)
        self._archive = self._data[self.layout.archive]
        self._lock = threading.Lock()
        self._window = _NOT_A_WINDOW
        self._current: np.ndarray = self._rows[0]
        self._changes = 0  # counted batches, so the file is written only when it changed
        self._published = -1
        self._write_failed = False
        self._warned: set[tuple[str, str]] = set()
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
            index = window % _ROWS
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

    # Sharing ---------------------------------------------------------------------------

    def publish(self) -> None:
        """Write this worker's counts for the others, if they changed: whole, then renamed."""
        with self._lock:
            self._count_pending()
            if self._changes == self._published and self._intact():
                return
            data, changes = self._data.tobytes(), self._changes
        try:
            self._write(data)
        except OSError as error:
            if not self._write_failed:
                LOG.warning(
                    "could not write this worker's drift counts to %s (%s): the other "
                    "workers' figures miss this one's customers until it can; scoring goes on",
                    self.directory, error.strerror or error,
                )  # fmt: skip
            self._write_failed = True
            return
        if self._write_failed:
            LOG.warning("this worker's drift counts are written to %s again", self.directory)
        self._write_failed = False
        self._published = changes

    def _intact(self) -> bool:
        """Whether this worker's file is still there as written (someone may have
        truncated or removed it): if not, it is written again."""
        try:
            return self.path.lstat().st_size == 8 * self.layout.size
        except OSError:
            return False

    def _write(self, data: bytes) -> None:
        _own_directory(self.directory)
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            handle = os.open(partial, _WRITE_FLAGS, 0o600)
            try:
                if not stat.S_ISREG(os.fstat(handle).st_mode):
                    raise OSError(f"{partial.name} is not a regular file")
                view = memoryview(data)
                while view:
                    view = view[os.write(handle, view) :]
            finally:
                os.close(handle)
            os.replace(partial, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise

    def read(self) -> Counts:
        """What is shown (module docstring): every worker's counts of closed windows."""
        with self._lock:
            self._count_pending()
            sources = [self._data.copy()]  # this worker's own, from its memory
        sources += self._others()
        now = self._now()
        layout, customers = self.layout, self.binner.customers
        since_start = np.zeros(layout.width, dtype=np.int64)
        rolling = np.zeros(layout.width, dtype=np.int64)
        workers, started = 0, self.clock()
        for data in sources:
            stamps = data[layout.stamps]
            rows = data[layout.rows].reshape(_ROWS, layout.width)
            since_start += data[layout.archive]
            for stamp, row in zip(stamps.tolist(), rows, strict=True):
                if _NOT_A_WINDOW < stamp < now and customers(row) >= MIN_CUSTOMERS:
                    since_start += row
                    if stamp == now - 1:
                        rolling += row
            workers += bool(data[layout.rows].any() or data[layout.archive].any())
            started = min(started, float(data[4]) / 1000)
        return Counts(since_start, rolling, workers, started, now * 60.0 * self.minutes)

    def _others(self) -> list[np.ndarray]:
        """The other workers' published counts: only files that are this service's own."""
        try:
            names = sorted(entry.name for entry in os.scandir(self.directory))
        except FileNotFoundError:
            return []  # nobody has published yet
        except OSError as error:
            raise DriftUnavailable(
                "The drift counts cannot be read now; scoring is not affected. The "
                "service's log says why."
            ) from error
        found = []
        for name in names:
            if name != self.path.name and FILE_NAME.match(name):
                data = self._read_file(name)
                if data is not None:
                    found.append(data)
        return found

    def _read_file(self, name: str) -> np.ndarray | None:
        path = self.directory / name
        size = 8 * self.layout.size
        try:
            # Never following a link, never waiting on a FIFO or a device; then the file
            # it is, not the name, is checked.
            handle = os.open(path, _READ_FLAGS)
        except OSError as error:
            if not isinstance(error, FileNotFoundError):  # gone: a worker rewrote it
                self._skip(name, f"it cannot be opened ({error.strerror or error})")
            return None
        try:
            info = os.fstat(handle)
            if not stat.S_ISREG(info.st_mode):
                return self._skip(name, "it is not a regular file")
            if info.st_uid != os.geteuid():
                return self._skip(name, "another user owns it")
            if info.st_size != size:
                return self._skip(name, f"it has {info.st_size} bytes, not {size}")
            raw = os.read(handle, size + 1)
        except OSError as error:
            return self._skip(name, f"it cannot be read ({error.strerror or error})")
        finally:
            os.close(handle)
        if len(raw) != size:
            return self._skip(name, "its size changed while it was read")
        data = np.frombuffer(raw, dtype=np.int64)
        problem = self._problem(data)
        return self._skip(name, problem) if problem else data

    def _problem(self, data: np.ndarray) -> str | None:
        """Why counts read from a file cannot be this service's own, if they cannot."""
        expected = (_MAGIC, self.binner.width, self.minutes, self.fingerprint)
        if tuple(data[:4].tolist()) != expected:
            return "its header is not this model's and window's"
        started_ms = int(data[4])
        if not 0 < started_ms <= (self.clock() + 86_400) * 1000:
            return "its start time is not a time"
        stamps = data[self.layout.stamps]
        if ((stamps < _NOT_A_WINDOW) | (stamps > self._now())).any():
            return "its windows are not times"
        if (data[_HEADER + _ROWS :] < 0).any():
            return "it has negative counts"
        return None

    def _skip(self, name: str, why: str) -> np.ndarray | None:
        """Nothing, from a file that is not one of this service's: said once."""
        if (name, why) not in self._warned:
            if len(self._warned) >= _WARNED_AT_MOST:
                self._warned.clear()
            self._warned.add((name, why))
            LOG.warning("drift: skipped %s in %s: %s", name, self.directory, why)
        return None

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
            since=_utc(counts.started),
            workers=counts.workers,
            rolling=RollingDrift(
                minutes=self.minutes, until=_utc(counts.until), **rolling.model_dump()
            ),
            thresholds=THRESHOLDS,
        )


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def _own_directory(directory: Path) -> None:
    """Make the instance's directory (0700) if it is not there; refuse one that is not a
    directory of this user's (a link, a file, another user's)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise OSError(f"{directory} is not a directory of this user's")
    if stat.S_IMODE(info.st_mode) != 0o700:
        directory.chmod(0o700)


class ProfilingScorer(Scorer):
    """A `Scorer` that counts every customer it scores into the live profile."""

    def __init__(
        self, model: TreeModel, metadata: ModelMetadata, live: LiveProfile, *, bulk_threads: int = 1
    ) -> None:
        super().__init__(
            model, metadata.threshold, label_rule=metadata.label_rule, bulk_threads=bulk_threads
        )
        self.live = live
        self._failed = False

    def observe(self, matrix: np.ndarray, scores: np.ndarray) -> None:
        if not len(scores):
            return
        try:
            self.live.observe(matrix, scores)
        except Exception:  # drift costs counts, never an answer
            if not self._failed:
                LOG.exception("drift: could not count customers scored; they are left out")
            self._failed = True


def scorer_for(
    model: TreeModel,
    metadata: ModelMetadata,
    *,
    profiling: bool,
    window_minutes: int,
    bulk_threads: int = 1,
) -> Scorer:
    """The service's scorer: profiling (CHURN_DRIFT_PROFILING, over windows of
    CHURN_DRIFT_WINDOW_MINUTES), unless turned off or the model has no profile."""
    if not profiling or not metadata.reference_profile:
        return Scorer(
            model, metadata.threshold, label_rule=metadata.label_rule, bulk_threads=bulk_threads
        )
    profile = reference_of(metadata)
    binner = Binner(profile, input_columns(model))
    live = LiveProfile(profile, binner, shared_directory(), window_minutes)
    Flusher(live, metadata.model_version).start()
    atexit.register(live.publish)
    return ProfilingScorer(model, metadata, live, bulk_threads=bulk_threads)


def live_report(scorer: Scorer, metadata: ModelMetadata) -> DriftReport:
    """GET /v2/drift's answer for the service's scorer."""
    if not metadata.reference_profile:
        return no_reference_report(metadata)
    if not isinstance(scorer, ProfilingScorer):
        raise ProfilingOff(
            "Live drift profiling is off in this service (CHURN_DRIFT_PROFILING=false)."
        )
    try:
        return scorer.live.report(metadata.model_version)
    except ChurnError:
        raise
    except Exception as error:  # the route answers in the service's shape, never a 500
        LOG.exception("drift: could not compute the live drift report")
        raise DriftUnavailable(
            "Live drift cannot be computed now; scoring is not affected. The service's "
            "log says why."
        ) from error


def no_reference_report(metadata: ModelMetadata) -> DriftReport:
    """/v2/drift for a model without a reference profile: a 200 that says so, no figures.
    Nothing was counted, so the windows are empty."""
    empty = FeatureDrift(psi=None, status="insufficient", bins=[], reference=[], current=[])
    window = WindowDrift(customers=0, features={}, score=empty, drifted=[])
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return DriftReport(
        **window.model_dump(),
        model_version=metadata.model_version,
        reference=False,
        message=no_reference_message(metadata),
        since=now,
        workers=0,
        rolling=RollingDrift(minutes=0, until=now, **window.model_dump()),
        thresholds=THRESHOLDS,
    )


@functools.cache
def shared_directory() -> Path:
    """Where the workers of this `bentoml serve`, and only they, keep their counts."""
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not shared:  # not a BentoML worker: a directory of this process's own
        private = Path(tempfile.mkdtemp(prefix="churn-drift-"))
        atexit.register(shutil.rmtree, private, ignore_errors=True)
        return private
    root = Path(shared).parent / SUBDIRECTORY
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"
    parent = os.getppid()
    _remove_stale(root, host)
    return root / f"serve-{host}-{parent}-{_started(parent)}"


_INSTANCE = re.compile(r"^serve-(?P<host>[A-Za-z0-9._]+)-(?P<pid>\d+)-(?P<started>\d+)$")


def _started(pid: int) -> str:
    """When process `pid` started, in clock ticks since boot: with its pid, it names the
    process for as long as the machine runs ("0" where /proc cannot tell)."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    return line.rpartition(")")[2].split()[19]


def _remove_stale(root: Path, host: str) -> None:
    """Remove the directories of this host's instances whose arbiter has ended."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        found = _INSTANCE.match(entry.name)
        if found is None or found["host"] != host or not entry.is_dir(follow_symlinks=False):
            continue
        if found["started"] != "0" and _started(int(found["pid"])) != found["started"]:
            shutil.rmtree(entry.path, ignore_errors=True)


# /metrics ---------------------------------------------------------------------------


@functools.cache
def gauges() -> tuple[Gauge, Gauge, Gauge]:
    # Imported here, in the worker: see churn.serving.fastpath.batch_sizes. Every worker sets
    # the same values, from the summed counts; the newest one is reported.
    import prometheus_client

    labels = ("feature", "window", "minutes")
    return (
        prometheus_client.Gauge(
            "churn_drift_psi",
            "Population stability index of a feature (or feature=score, the model's "
            f"score) against the training data; NaN under {MIN_CUSTOMERS} customers.",
            labels,
            multiprocess_mode="mostrecent",
        ),
        prometheus_client.Gauge(
            "churn_drift_status",
            "Drift status: 0 ok (PSI < 0.1), 1 warn (< 0.25), 2 drift, "
            f"-1 too few customers in the window (< {MIN_CUSTOMERS}).",
            labels,
            multiprocess_mode="mostrecent",
        ),
        prometheus_client.Gauge(
            "churn_drift_customers",
            "Customers shown in the window (since_start, or rolling: the last closed window "
            "of `minutes` minutes).",
            ("window", "minutes"),
            multiprocess_mode="mostrecent",
        ),
    )


def set_gauges(report: DriftReport) -> None:
    psi, status, customers = gauges()
    minutes = str(report.rolling.minutes)
    windows: dict[str, WindowDrift] = {"since_start": report, "rolling": report.rolling}
    for window, drift in windows.items():
        customers.labels(window=window, minutes=minutes).set(drift.customers)
        for name, result in [*drift.features.items(), ("score", drift.score)]:
            value = float("nan") if result.psi is None else result.psi
            psi.labels(feature=name, window=window, minutes=minutes).set(value)
            status.labels(feature=name, window=window, minutes=minutes).set(
                STATUS_CODES[result.status]
            )


class Flusher(threading.Thread):
    """Counts the waiting customers and publishes them every second, and sets the gauges
    every 15 seconds. Nothing it reads can make it wait (`LiveProfile._read_file`)."""

    def __init__(self, live: LiveProfile, model_version: str) -> None:
        super().__init__(name="churn-drift", daemon=True)
        self.live = live
        self.model_version = model_version

    def run(self) -> None:
        gauges_due = 0.0
        while True:
            try:
                self.live.publish()
                if time.monotonic() >= gauges_due:
                    gauges_due = time.monotonic() + GAUGE_SECONDS
                    set_gauges(self.live.report(self.model_version))
            except Exception:  # a count or gauge late must not end the worker
                LOG.exception("could not publish the drift counts or set their gauges")
            time.sleep(FLUSH_SECONDS)
