"""The serving process loads its model without scikit-learn, joblib or any pickle.

A worker is run as `bentoml serve` runs one, in a fresh interpreter: it imports
service.py, builds the service (which loads the stored model) and scores a customer.
scikit-learn and joblib are made impossible to import there, as in the service image,
which does not install them; every attempt to import them is recorded with the module
that made it, and every class a pickle would look up (Python's "pickle.find_class"
audit event) too.

SciPy stays: XGBoost imports `scipy.sparse` itself and requires SciPy. What the
service's own code must not pull in is SciPy's statistics, which only training and
import use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

WORKER = """
import importlib.abc, json, sys

ABSENT = {"sklearn", "joblib"}
attempts = []


class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] not in ABSENT:
            return None
        frame = sys._getframe(1)
        while frame.f_globals.get("__name__", "").startswith(("importlib", "_frozen")):
            frame = frame.f_back
        attempts.append([name, frame.f_globals.get("__name__", "?")])
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, Absent())
unpickled = []
sys.addaudithook(lambda event, args: event == "pickle.find_class" and unpickled.append(args))

import service
from churn.record.schema import Customer

instance = service.ChurnService.inner()
customer = Customer.model_validate({
    "CreditScore": 600, "Geography": "Germany", "Age": 45, "Tenure": 3, "Balance": 1000.0,
    "NumOfProducts": 1, "HasCrCard": 1, "IsActiveMember": 0, "EstimatedSalary": 50000.0,
})
answer = instance.predictor.predict([customer])[0]
print(json.dumps({
    "modules": sorted(sys.modules),
    "attempts": attempts,
    "unpickled": [[str(part) for part in args] for args in unpickled],
    "answer": answer.prediction,
}))
"""


def test_a_worker_serves_without_scikit_learn_joblib_or_a_pickle(bundled_store: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(bundled_store)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["answer"] in {"churn", "not churn"}
    ours = [(name, by) for name, by in seen["attempts"] if by.startswith(("churn", "service"))]
    assert not ours, f"the service's own code imports {ours}"
    loaded = set(seen["modules"])
    assert "churn.model.store" in loaded
    assert not {"sklearn", "joblib"} & loaded
    assert not {name for name in loaded if name.startswith("scipy.stats")}
    assert seen["unpickled"] == [], "a pickle was loaded"


def test_the_probe_sees_an_import_and_a_pickle(bundled_store: Path) -> None:
    """The same probe, where the worker does import joblib and unpickle: it says so."""
    script = WORKER.replace(
        "import service\n",
        "import pickle, collections\n"
        "pickle.loads(pickle.dumps(collections.OrderedDict()))\n"
        "try:\n    import joblib\nexcept ModuleNotFoundError:\n    pass\n"
        "import service\n",
    )
    env = {**os.environ, "BENTOML_HOME": str(bundled_store)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert ["joblib", "__main__"] in seen["attempts"]
    assert ["collections", "OrderedDict"] in seen["unpickled"]
