"""pyspark's Python worker daemon, with the scoring modules loaded before it forks.

An executor starts one daemon (`spark.python.daemon.module`, set by
`churn.spark.session.start`), which forks a Python worker for each task it runs at
once. pyspark's own daemon forks them bare, and each then imports pandas, Arrow,
scikit-learn and XGBoost for itself, about 5 CPU-seconds apiece: the largest fixed
cost of a local job once the rows stay out of the JVM (benchmarks/README.md). This one
imports them once, before any fork, so every worker starts with them loaded.

Executors score with the model's booster file (`churn.model.booster`), not its pickle,
so they need no scikit-learn; but XGBoost imports it whenever it is installed, for its
scikit-learn-style estimators, and with it SciPy's statistics: 2.3 of the daemon's 4.8
CPU-seconds. The daemon marks scikit-learn as absent before XGBoost loads, so XGBoost
takes its own branch for a machine without it, and a worker that did try to import
scikit-learn would fail at once, by name. `tests/spark/test_daemon.py` checks that
XGBoost still loads and predicts this way.

pyspark forks bare because a thread running at the fork is not copied and may hold a
lock the child then waits for. The only thread these imports start is jemalloc's
background thread (pyarrow's allocator), which jemalloc's own fork handlers stop and
restart around the fork; OpenBLAS is kept to the calling thread so that numpy starts no
pool of its own. Nothing here runs a computation before the fork.
"""

from __future__ import annotations

import importlib
import os
import sys

# Before numpy loads OpenBLAS, which would otherwise start its threads at import.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

PRELOADED = ("pyspark.worker", "churn.spark.job", "churn.scoring.scorer")
NOT_NEEDED = ("sklearn",)


def preload() -> None:
    for name in NOT_NEEDED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    for name in PRELOADED:
        importlib.import_module(name)


def main() -> None:
    preload()
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
