"""Live drift, shared: each worker's counts as a file of its own, read by the others.

A worker publishes its counts (`churn.monitoring.live_counts`) once a second, when they
changed, as a file of its own (`worker-<pid>-<ns>.counts`, 0600) in a directory of this
service instance's own (0700): `churn-drift/serve-<host>-<arbiter pid>-<its start>/` beside
BentoML's Prometheus multiprocess directory, which a second `bentoml serve` on the same
BENTOML_HOME empties when it starts (so the drift files are kept out of it), and which the
workers of one `bentoml serve` share by their parent, the arbiter. A file is written whole
and renamed into place, so nobody can truncate or rewrite the memory a worker counts in,
and a full or read-only disk costs the other workers' view of this one's counts, nothing
else. A file is read only if it is this service's own: a regular file (opened without
following a link, and without waiting, so a FIFO cannot hold a reader), of this user, of
the exact size, with this profile's header and counts that can be counts; anything else is
skipped with a warning. The files hold counts per bin and nothing else: no customer's
values, ids or scores.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from churn.record.errors import ChurnError

LOG = logging.getLogger("churn.drift")
SUBDIRECTORY = "churn-drift"
FILE_NAME = re.compile(r"^worker-\d+-\d+\.counts$")
MAGIC = 0x43484452_49465432  # "CHDRIFT2"
HEADER = 8  # magic, width, minutes, fingerprint, started (ms), pid, 0, 0
ROWS = 2  # the window open now and the last one closed
NOT_A_WINDOW = -1
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WARNED_AT_MOST = 1000


class DriftUnavailable(ChurnError):
    status_code = 503
    code = "drift_unavailable"


@dataclass(frozen=True)
class Layout:
    """Where each part lies in a worker's counts (its memory, and its file)."""

    width: int
    stamps: slice
    rows: slice
    archive: slice
    size: int  # int64 values

    @classmethod
    def of(cls, width: int) -> Layout:
        rows = HEADER + ROWS
        archive = rows + ROWS * width
        return cls(
            width,
            slice(HEADER, rows),
            slice(rows, archive),
            slice(archive, archive + width),
            archive + width,
        )


class WorkerFiles:
    """This worker's file in the instance's directory, and the other workers' files there."""

    def __init__(
        self,
        directory: Path,
        layout: Layout,
        minutes: int,
        fingerprint: int,
        clock: Callable[[], float],
    ) -> None:
        self.directory = directory
        self.layout = layout
        self.clock = clock
        # The header's first values, the same in every file of this model and window.
        self.identity = (MAGIC, layout.width, minutes, fingerprint)
        self.path = directory / f"worker-{os.getpid()}-{time.time_ns()}.counts"
        self._write_failed = False
        self._warned: set[tuple[str, str]] = set()

    def publish(self, data: bytes) -> bool:
        """Write this worker's counts whole, then rename them into place; False, said once
        in the log, when they cannot be written."""
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
            return False
        if self._write_failed:
            LOG.warning("this worker's drift counts are written to %s again", self.directory)
        self._write_failed = False
        return True

    def intact(self) -> bool:
        """Whether this worker's file is still there as written (someone may have
        truncated or removed it): if not, it is written again."""
        try:
            return self.path.lstat().st_size == 8 * self.layout.size
        except OSError:
            return False

    def _write(self, data: bytes) -> None:
        own_directory(self.directory)
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

    def others(self, window: Callable[[], int]) -> list[np.ndarray]:
        """The other workers' published counts: only files that are this service's own.
        `window` tells the window open now: no file can stamp a later one."""
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
                data = self._read_file(name, window)
                if data is not None:
                    found.append(data)
        return found

    def _read_file(self, name: str, window: Callable[[], int]) -> np.ndarray | None:
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
        problem = self._problem(data, window)
        return self._skip(name, problem) if problem else data

    def _problem(self, data: np.ndarray, window: Callable[[], int]) -> str | None:
        """Why counts read from a file cannot be this service's own, if they cannot."""
        if tuple(data[: len(self.identity)].tolist()) != self.identity:
            return "its header is not this model's and window's"
        started_ms = int(data[4])
        if not 0 < started_ms <= (self.clock() + 86_400) * 1000:
            return "its start time is not a time"
        stamps = data[self.layout.stamps]
        if ((stamps < NOT_A_WINDOW) | (stamps > window())).any():
            return "its windows are not times"
        if (data[HEADER + ROWS :] < 0).any():
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


def own_directory(directory: Path) -> None:
    """Make the instance's directory (0700) if it is not there; refuse one that is not a
    directory of this user's (a link, a file, another user's)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise OSError(f"{directory} is not a directory of this user's")
    if stat.S_IMODE(info.st_mode) != 0o700:
        directory.chmod(0o700)


@functools.cache
def shared_directory() -> Path:
    """Where the workers of this `bentoml serve`, and only they, keep their counts."""
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # BentoML's, not a churn setting
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
