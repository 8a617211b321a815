"""The Spark context of `churn batch`, and Spark's failures as one line each.

A batch job needs a SparkContext only: Spark plans and schedules tasks, and no row or
query goes through Spark SQL, so no SparkSession is created (0.65 s of a local start).

Spark reports a missing Java, an unreadable file or an error in a Python worker as a
JVM stack trace of a hundred lines. `spark_errors` turns each into a `ChurnError` with
one line that names the cause; an error this package raised in an executor (a model
that fails its checksum there) comes back as the same error with the same message.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.record import errors
from churn.record.errors import BadRequest, ChurnError

if TYPE_CHECKING:
    from pyspark import SparkContext

LOG_LEVELS = ("off", "error", "warn", "info")
# In local mode one JVM is the driver and the executor, and lives as long as the job.
# Measured on 1M rows (benchmarks/README.md): C2's compiling and G1's concurrent work
# were a third of its CPU, which C1's code and the parallel collector do not pay back.
LOCAL_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC")
# Its start is mostly loading and verifying Spark's classes from 200+ jars: a class-data
# archive of them (JDK's AppCDS), written at the end of a machine's first `churn batch`
# run, halves it. The JVM does not complain of an archive for another Java or Spark.
_QUIET_ARCHIVE = ("-Xlog:cds=off", "-Xlog:cds+dynamic=off")
_RECORDING: dict[str, tuple[Path, Path]] = {}  # by application id: the partial, the archive
_LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
JAVA_HINT = (
    "Spark needs Java 17 or newer: install it (Debian: apt-get install default-jre-headless) "
    "or set JAVA_HOME to it"
)


class SparkUnavailable(ChurnError):
    """pyspark or Java is missing, or Spark could not start."""

    code = "spark_unavailable"


class SparkJobFailed(ChurnError):
    """Spark could not finish the job; the message is its cause in one line."""

    code = "spark_job_failed"


def require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError as error:
        raise SparkUnavailable(
            "pyspark is not installed: `uv sync --extra spark` (or `make setup`) installs it."
        ) from error


def find_java() -> str:
    """The java that Spark's launcher will run (JAVA_HOME first, as spark-class does)."""
    home = os.environ.get("JAVA_HOME", "").strip()
    if home:
        java = Path(home) / "bin" / "java"
        if not java.is_file():
            raise SparkUnavailable(f"JAVA_HOME={home} has no bin/java. {JAVA_HINT}.")
        return str(java)
    found = shutil.which("java")
    if found is None:
        raise SparkUnavailable(f"No Java found (no JAVA_HOME, no java on PATH). {JAVA_HINT}.")
    return found


@contextmanager
def quiet_pyspark() -> Iterator[None]:
    # pyspark 4 warns that it does not fully support pandas 3. No pandas frame passes
    # through Spark here (each task reads and writes with pyarrow): that support is unused.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
        )
        yield


def start(
    *,
    master: str | None,
    app_name: str,
    conf: Mapping[str, str] | None = None,
    log_level: str = "off",
    record_classes: bool = False,
) -> SparkContext:
    """A context on `master`, or on the master spark-submit gave, or on local[*].

    In local mode the JVM starts from the class-data archive if there is one; without
    one, `record_classes` has it written when the context ends (`finish`)."""
    require_pyspark()
    from pyspark import SparkConf, SparkContext

    java = find_java()
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # spark-submit started this process and its JVM: read the settings it was given.
        SparkContext._ensure_initialized()
    submitted = SparkConf()
    chosen = master or submitted.get("spark.master") or "local[*]"
    # Executors run this same interpreter unless told otherwise (a packed environment
    # on a cluster: README). pyspark reads it from the environment, which spark-submit
    # sets from spark.pyspark.python.
    os.environ["PYSPARK_PYTHON"] = (
        (conf or {}).get("spark.pyspark.python")
        or os.environ.get("PYSPARK_PYTHON")
        or sys.executable
    )
    defaults = {
        "spark.master": chosen,
        "spark.app.name": app_name,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": str(sys.stderr.isatty()).lower(),
        # Python workers forked with the scoring modules already imported.
        "spark.python.daemon.module": "churn.spark.daemon",
        "spark.driver.extraJavaOptions": (
            f"-Dlog4j2.configurationFile={_LOG_CONFIG.as_uri()} -Dchurn.spark.log={log_level}"
        ),
    }
    if chosen.startswith("local"):
        # No lookup of this host's name, which can take seconds where DNS is slow.
        defaults |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
        defaults["spark.driver.extraJavaOptions"] += " " + " ".join(LOCAL_JVM)
        archive = class_archive(java)
        recording = None
        if archive.is_file():
            defaults["spark.driver.extraJavaOptions"] += f" -XX:SharedArchiveFile={archive}"
        elif record_classes and _writable(archive.parent):
            recording = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
            defaults["spark.driver.extraJavaOptions"] += f" -XX:ArchiveClassesAtExit={recording}"
        defaults["spark.driver.extraJavaOptions"] += " " + " ".join(_QUIET_ARCHIVE)
    from churn.spark.daemon import PRELOAD_SOCKET

    # Only a JVM this process launches gets the socket, and only through its environment
    # at launch: a stale one (from a parent process) is never passed on.
    os.environ.pop(PRELOAD_SOCKET, None)
    launching = SparkContext._gateway is None and not os.environ.get("PYSPARK_GATEWAY_PORT")
    if chosen.startswith("local") and launching:
        os.environ[PRELOAD_SOCKET] = _start_preloaded()
    settings = SparkConf()
    settings.setAll(submitted.getAll())
    for key, value in defaults.items():
        if (master is not None and key == "spark.master") or not submitted.contains(key):
            settings.set(key, value)
    for key, value in (conf or {}).items():
        if key == "spark.driver.extraJavaOptions":  # as well as this package's, not instead
            value = f"{_without_collector(defaults[key], value)} {value}"
        settings.set(key, value)
    try:
        with quiet_pyspark(), spark_errors():
            context = SparkContext.getOrCreate(settings)
    except BaseException:
        _stop_preloaded(wait=False)
        raise
    finally:
        os.environ.pop(PRELOAD_SOCKET, None)
    context.setLogLevel(log_level.upper())
    if chosen.startswith("local") and recording is not None:
        _RECORDING[context.applicationId] = (recording, archive)
    return context


_PRELOADED: list[tuple[subprocess.Popen[bytes], str]] = []


def _start_preloaded() -> str:
    """The Python workers' daemon, importing while the JVM starts (`churn.spark.daemon`);
    its socket, for the JVM's environment. It ends when this process closes its stdin,
    or ends."""
    folder = tempfile.mkdtemp(prefix="churn-spark-")  # only this user may connect
    path = os.path.join(folder, "daemon.sock")
    # As Spark sets it for its Python workers, so that hashing agrees with theirs.
    env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    python = os.environ["PYSPARK_PYTHON"]
    process = subprocess.Popen(
        [python, "-m", "churn.spark.daemon", "--preload", path], stdin=subprocess.PIPE, env=env
    )
    _PRELOADED.append((process, folder))
    return path


def _stop_preloaded(*, wait: bool = True) -> None:
    while _PRELOADED:
        process, folder = _PRELOADED.pop()
        if process.stdin is not None:
            process.stdin.close()
        if wait:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)


def class_archive(java: str) -> Path:
    """Where the class-data archive of this Java, this Spark and these options is kept."""
    import pyspark
    from pyspark.find_spark_home import _find_spark_home

    real = Path(java).resolve()
    found = real.stat()
    identity = [str(real), str(found.st_size), str(found.st_mtime_ns), pyspark.__version__,
                _find_spark_home(), *LOCAL_JVM]  # fmt: skip
    key = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "churn"
    return cache / f"spark-classes-{key}.jsa"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def finish(context: SparkContext, *, exiting: bool = False) -> None:
    """Stop the context; if its JVM is recording its classes, let it write them and exit,
    then put the archive in place whole (a JVM given half an archive crashes).

    `exiting`: this process ends next (a `churn batch` command). Its JVM stops the
    context itself then, as under spark-submit: the JVM exits when this process's end
    closes its stdin, and Spark's shutdown hook stops the context. pyspark's own stop
    would first wait up to a second for its accumulator server, which polls once a
    second (pyspark/accumulators.py): a quarter of a 1M-row run.
    """
    from pyspark import SparkContext

    recording = _RECORDING.pop(context.applicationId, None)
    if exiting and recording is None:
        _stop_preloaded(wait=False)  # it ends with this process's end of its stdin
        return
    context.stop()
    _stop_preloaded()
    process = getattr(SparkContext._gateway, "proc", None)
    if recording is None or process is None or process.stdin is None:
        return
    partial, archive = recording
    try:
        process.stdin.close()  # the gateway's JVM exits when its stdin closes
        process.wait(timeout=300)
        if process.returncode == 0 and partial.is_file():
            partial.replace(archive)
    except (OSError, subprocess.TimeoutExpired):
        pass  # no archive this time; the next run records one
    finally:
        partial.unlink(missing_ok=True)


def _without_collector(ours: str, theirs: str) -> str:
    """Our JVM options, less our collector if theirs names one (the JVM refuses two)."""
    collector = re.compile(r"-XX:\+Use\w*GC")
    if not any(collector.fullmatch(option) for option in theirs.split()):
        return ours
    return " ".join(option for option in ours.split() if not collector.fullmatch(option))


@contextmanager
def spark_errors() -> Iterator[None]:
    """Raise Spark's and Py4J's failures as `ChurnError`s with one line each."""
    try:
        yield
    except ChurnError:
        raise
    except Exception as error:
        translated = translate(error)
        if translated is None:
            raise
        raise translated from None


_RAISED_IN_WORKER = re.compile(rf"^{re.escape(errors.__name__)}\.(\w+): (.+)$", re.MULTILINE)


def translate(error: BaseException) -> ChurnError | None:
    """The `ChurnError` for a failure that came from Spark, or None for any other."""
    module = type(error).__module__
    if not module.startswith(("pyspark", "py4j")):
        return None
    text = str(error)
    raised = _RAISED_IN_WORKER.findall(text)
    if raised:
        name, message = raised[-1]
        kind = getattr(errors, name, None)
        if isinstance(kind, type) and issubclass(kind, ChurnError):
            return kind(message.strip())
    condition = _condition(error)
    if condition == "JAVA_GATEWAY_EXITED":
        return SparkUnavailable(f"Spark's JVM did not start ({find_java()}). {JAVA_HINT}.")
    if condition == "PATH_NOT_FOUND":
        return BadRequest(_first_line(text).split("] ", 1)[-1])
    if "Traceback (most recent call last)" in text:
        return SparkJobFailed("A Spark task failed: " + _last_line(text))
    causes = [_first_line(text), *_java_causes(error)]
    unique = [cause for index, cause in enumerate(causes) if cause and cause not in causes[:index]]
    return SparkJobFailed("Spark failed: " + " Cause: ".join(unique[:2]))


def _condition(error: BaseException) -> str | None:
    getter = getattr(error, "getCondition", None) or getattr(error, "getErrorClass", None)
    try:
        return str(getter()) if getter is not None else None
    except Exception:  # a Py4J error without a JVM behind it any more
        return None


def _java_causes(error: BaseException) -> list[str]:
    """The first line of the deepest message among the JVM exception and its causes."""
    java: Any = getattr(error, "java_exception", None) or getattr(error, "_origin", None)
    lines: list[str] = []
    for _ in range(10):
        if java is None:
            break
        try:
            lines.append(_first_line(str(java.getMessage() or "")))
            java = java.getCause()
        except Exception:
            break
    return [line for line in lines if line][-1:]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:400]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # pyspark appends the JVM's frames after the Python traceback when asked to.
    python = [line for line in lines if not line.startswith(("at ", "JVM stacktrace"))]
    return (python or lines or [""])[-1][:400]
