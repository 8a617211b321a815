"""The SparkSession of `churn batch`, and Spark's failures as one line each.

The job runs on whatever session it is given: the one spark-submit, a notebook, a
Databricks job or Spark Connect (`SPARK_REMOTE`) already made, whose settings are the
platform's and stay as they are; or, when `churn batch` is run by hand, one it starts
itself with `--master` and `--conf`. On a session it did not start it sets nothing: no
UI switch, log level, daemon module or JVM flag, and it does not stop it.

Spark reports a missing Java, an unreadable file or an error in a Python worker as a
JVM stack trace of a hundred lines. `spark_errors` turns each into a `ChurnError` with
one line that names the cause; an error this package raised in an executor (a model
that fails its checksum there) comes back as the same error with the same message.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.record import errors
from churn.record.errors import BadRequest, ChurnError, InvalidInput

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JAVA_HINT = (
    "Spark needs Java 17 or newer: install it (Debian: apt-get install default-jre-headless) "
    "or set JAVA_HOME to it"
)


# Spark settings for a session churn starts itself (a platform's session keeps its own;
# the README gives them as spark-submit's --conf). Spark 4 measures the Arrow batch it
# sends to Python after every row when a byte limit is set (64 MiB by default in 4.3), an
# O(columns) walk per row: the pass's batches are 10,000 narrow rows (about 2 MiB), and
# without the limit 10M rows took 25% less time on local[1], 4-12% on local[2]
# (benchmarks/README.md, "Spark").
# Spark 3.5 has no such limit and ignores the key.
OWN_SESSION_DEFAULTS = {"spark.sql.execution.arrow.maxBytesPerBatch": str(2**31 - 1)}


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
            "pyspark is not installed: `uv sync --extra spark` (or `make setup`) installs it; "
            "on a cluster, the platform's Spark provides it."
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
    # pyspark 4 warns that it does not fully support pandas 3 when it imports its Arrow
    # helpers. No pandas frame passes through Spark here (mapInArrow hands Arrow batches).
    # pyspark 3.5 compares versions with distutils, which Python 3.11 says is deprecated.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
        )
        warnings.filterwarnings(
            "ignore", message="The distutils package is deprecated", category=DeprecationWarning
        )
        yield


@dataclass
class Session:
    """A session, and whether this process started it (then it, and only it, stops it)."""

    spark: SparkSession
    owned: bool

    def stop(self) -> None:
        if self.owned:
            self.spark.stop()


def _platform_session() -> bool:
    """Whether a session is the platform's to give: spark-submit started this process's
    JVM, or Spark Connect is configured, or a session is already active (a notebook)."""
    from pyspark.sql import SparkSession

    return bool(
        os.environ.get("PYSPARK_GATEWAY_PORT")
        or os.environ.get("SPARK_REMOTE")
        or os.environ.get("SPARK_CONNECT_MODE_ENABLED")
        or SparkSession.getActiveSession() is not None
    )


def start(*, master: str | None, app_name: str, conf: Mapping[str, str] | None = None) -> Session:
    """The platform's session if there is one, else a session on `master` (local[*])."""
    require_pyspark()
    from pyspark.sql import SparkSession

    with quiet_pyspark(), spark_errors():
        if _platform_session():
            if master or conf:
                raise InvalidInput(
                    "--master and --conf apply only when churn starts Spark itself; this "
                    "run is on a session spark-submit or the platform made: give them to it."
                )
            return Session(SparkSession.builder.getOrCreate(), owned=False)
        find_java()
        # Executors in local mode run this interpreter; pyspark's default is python3 on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.master(master or "local[*]").appName(app_name)
        for key, value in own_session_conf(conf).items():
            builder = builder.config(key, value)
        return Session(builder.getOrCreate(), owned=True)


def own_session_conf(conf: Mapping[str, str] | None) -> dict[str, str]:
    """The settings of a session churn starts: its defaults, then the user's --conf."""
    return {**OWN_SESSION_DEFAULTS, **(conf or {})}


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
    if not module.startswith(("pyspark", "py4j", "grpc")):
        return None
    text = str(error)
    raised = _RAISED_IN_WORKER.findall(text)
    if raised:
        name, message = raised[-1]
        kind = getattr(errors, name, None)
        if isinstance(kind, type) and issubclass(kind, ChurnError):
            return kind(message.strip())
    condition = condition_of(error)
    if condition == "JAVA_GATEWAY_EXITED":
        return SparkUnavailable(f"Spark's JVM did not start ({find_java()}). {JAVA_HINT}.")
    if condition in ("PATH_NOT_FOUND", "TABLE_OR_VIEW_NOT_FOUND"):
        return BadRequest(_first_line(text).split("] ", 1)[-1])
    if "Traceback (most recent call last)" in text:
        return SparkJobFailed("A Spark task failed: " + _last_line(text))
    causes = [_first_line(text), *_java_causes(error)]
    unique = [cause for index, cause in enumerate(causes) if cause and cause not in causes[:index]]
    return SparkJobFailed("Spark failed: " + " Cause: ".join(unique[:2]))


def condition_of(error: BaseException) -> str | None:
    """Spark's error condition (error class) of a failure, if it has one."""
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
