"""The Python workers' daemon: the scoring modules loaded before it forks, scikit-learn not.

XGBoost imports scikit-learn whenever it is installed; the daemon marks it absent first.
If an XGBoost release stops working that way, these tests say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from pyspark import SparkContext

from churn.model.synth import synthesize
from churn.record.schema import CustomerFeatures
from churn.scoring.scorer import Scorer
from churn.spark import session
from churn.spark.model import DriverModel

_SCORE_AFTER_PRELOAD = """
import json, sys
import numpy as np
from churn.spark.daemon import preload
preload()
from churn.model.booster import TreeModel
from churn.scoring.scorer import Scorer
scorer = Scorer(TreeModel.from_bytes(open(sys.argv[1], "rb").read()), 0.5)
matrix = np.load(sys.argv[2])
print(json.dumps({
    "sklearn": sorted(name for name in sys.modules if name.startswith("sklearn")),
    "blocked": "sklearn" in sys.modules and sys.modules["sklearn"] is None,
    "scores": scorer.probabilities(matrix).tolist(),
}))
"""


def test_xgboost_scores_without_scikit_learn_after_the_preload(
    bundled_model: DriverModel, tmp_path: Path
) -> None:
    booster = tmp_path / bundled_model.ref.file_name
    booster.write_bytes(bundled_model.booster)
    service = Scorer(bundled_model.loaded.tree, bundled_model.ref.threshold)
    features = synthesize(500, seed=3)[list(CustomerFeatures.model_fields)]
    matrix = tmp_path / "matrix.npy"
    np.save(matrix, service.matrix(features))
    done = subprocess.run(
        [sys.executable, "-c", _SCORE_AFTER_PRELOAD, str(booster), str(matrix)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["sklearn"] == ["sklearn"]  # the marker alone: nothing of it loaded
    assert found["blocked"]
    np.testing.assert_array_equal(found["scores"], service.probabilities(np.load(matrix)))


def test_the_sessions_workers_come_from_that_daemon(spark: SparkContext) -> None:
    def modules(_: int) -> tuple[bool, bool]:
        return "xgboost" in sys.modules, sys.modules.get("sklearn", False) is None

    assert spark.parallelize([0, 1], 2).map(modules).collect() == [(True, True)] * 2


def test_local_workers_come_from_the_daemon_the_driver_preloaded(spark: SparkContext) -> None:
    """The JVM's daemon hands over to the process the driver started importing the
    scoring modules while the JVM started: a worker's daemon is that process's child."""

    def parent_of(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    [daemon_parent] = spark.parallelize([0], 1).map(lambda _: parent_of(os.getppid())).collect()
    [(preloaded, _)] = session._PRELOADED
    assert daemon_parent == preloaded.pid
