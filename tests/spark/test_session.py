"""The local session's Python workers: forked from the daemon the driver preloaded."""

from __future__ import annotations

import os
from pathlib import Path

from pyspark.sql import SparkSession

from churn.spark import session


def test_workers_come_from_the_preloaded_daemon(spark: SparkSession) -> None:
    """The JVM's daemon hands over to the process the driver started importing the
    scoring modules while the JVM started: a worker's daemon is that process's child."""

    def parent_of(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    [daemon_parent] = (
        spark.sparkContext.parallelize([0], 1).map(lambda _: parent_of(os.getppid())).collect()
    )
    [(preloaded, _)] = session._PRELOADED
    assert daemon_parent == preloaded.pid
