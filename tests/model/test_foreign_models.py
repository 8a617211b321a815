"""Pipelines made elsewhere, as a new user brings them: each made by tests/model/foreign/
maker.py in an environment of its own pins (uv), imported with `churn import-model`,
served by a real `bentoml serve`, and answered over HTTP exactly as their own
environment's `predict` and `predict_proba` answer.

- the notebook's pins (issue 26: scikit-learn 1.6.1, XGBoost 2.1.4, NumPy 2.0.2, pandas
  2.2.2, joblib 1.4.2; Python 3.11 stands in for its 3.9, whose pickles it loads);
- an older pair: scikit-learn 1.3.2, XGBoost 1.7.6, NumPy 1.26.4;
- named steps, the columns in another order and a dropped category, in both;
- a scaler on the numbers, which must be refused naming the step.

The environments are the ones the importer builds for these pickles (the same pins,
the same cache folder, build/import-envs), so each is built once: about 30 s the first
time with a registry, nothing after. Marked `foreign`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from churn.model.environments import Pins, environment
from churn.model.synth import synthesize
from churn.record.schema import FEATURE_NAMES
from tests.conftest import ROOT, run_churn, start_service, stop, wait_for

pytestmark = pytest.mark.foreign

ENV_CACHE = ROOT / "build" / "import-envs"
MAKER = Path(__file__).parent / "foreign" / "maker.py"
NOTEBOOK = Pins(
    (
        ("scikit-learn", "1.6.1"), ("xgboost-cpu", "2.1.4"), ("numpy", "2.0.2"),
        ("scipy", "1.13.1"), ("pandas", "2.2.2"), ("joblib", "1.4.2"),
    ),
    guessed=False,
)  # fmt: skip
OLDER = Pins(
    (
        ("scikit-learn", "1.3.2"), ("xgboost", "1.7.6"), ("numpy", "1.26.4"),
        ("scipy", "1.11.4"), ("pandas", "2.1.4"), ("joblib", "1.3.2"),
    ),
    guessed=False,
)  # fmt: skip
ENVIRONMENTS = {"notebook": NOTEBOOK, "older": OLDER}


@pytest.fixture(scope="session")
def pythons() -> dict[str, Path]:
    """The Python of each environment, built by uv once (and kept in build/import-envs)."""
    return {
        name: environment(pins, ENV_CACHE, wheelhouse=None, progress=print)
        for name, pins in ENVIRONMENTS.items()
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("foreign-bentoml")


def make(python: Path, kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"churn_{kind}_v3_2.joblib"
    subprocess.run([str(python), "-I", str(MAKER), "make", kind, str(path)], check=True)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def churn_import(path: Path, home: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return run_churn(
        "import-model", str(path), "--sha256", digest(path), *more,
        env={"BENTOML_HOME": str(home), "CHURN_IMPORT_ENV_CACHE": str(ENV_CACHE)},
    )  # fmt: skip


def customers() -> pd.DataFrame:
    """Customers like the bank's, and some at the schema's edges."""
    typical = synthesize(400, seed=31)[list(FEATURE_NAMES)]
    edges = typical.head(40).copy()
    edges["Age"] = [18, 100] * 20
    edges["Balance"] = [0.0, 5_000_000.0] * 20
    edges["CreditScore"] = [300, 900] * 20
    frame = pd.concat([typical, edges], ignore_index=True)
    frame.insert(0, "CustomerId", np.arange(15_600_001, 15_600_001 + len(frame)))
    return frame


def old_answers(python: Path, model: Path, frame: pd.DataFrame, folder: Path) -> dict[str, Any]:
    """predict_proba and predict of the pickle, in the environment it was made in."""
    given, answer = folder / "customers.json", folder / "answers.json"
    columns = {name: frame[name].tolist() for name in FEATURE_NAMES}
    given.write_text(json.dumps(columns), encoding="utf-8")
    subprocess.run(
        [str(python), "-I", str(MAKER), "predict", str(model), str(given), str(answer)],
        check=True,
    )
    found: dict[str, Any] = json.loads(answer.read_text(encoding="utf-8"))
    return found


@dataclass(frozen=True)
class Served:
    url: str
    tag: str
    old: dict[str, Any]
    frame: pd.DataFrame


@pytest.fixture(
    scope="module",
    params=[
        ("notebook", "notebook"),
        ("notebook", "reordered"),
        ("older", "notebook"),
        ("older", "reordered"),
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def served(
    request: pytest.FixtureRequest,
    pythons: dict[str, Path],
    store: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    environment_name, kind = request.param
    python = pythons[environment_name]
    folder = tmp_path_factory.mktemp(f"{environment_name}-{kind}")
    model = make(python, kind, folder)
    done = churn_import(model, store)
    assert done.returncode == 0, done.stderr
    pins = ENVIRONMENTS[environment_name]
    assert f"made with {pins.summary()} (read from the pickle)" in done.stderr
    assert "0 labels differ" in done.stderr
    tag = done.stdout.split()[-1]
    frame = customers()
    old = old_answers(python, model, frame, folder)
    url, process = start_service(store, folder / "service.log", {"CHURN_MODEL_TAG": tag})
    try:
        wait_for(url + "/readyz", process)
        yield Served(url, tag, old, frame)
    finally:
        stop(process)


def test_v1_customerbatch_labels_every_customer_as_the_old_environment(served: Served) -> None:
    content = served.frame.to_csv(index=False).encode()
    answer = httpx.post(
        f"{served.url}/v1/customerbatch", files={"file": ("c.csv", content, "text/csv")}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    labels = answer.json()
    expected = {
        str(customer): "Churn" if label == 1 else "Not Churn"
        for customer, label in zip(served.frame["CustomerId"], served.old["labels"], strict=True)
    }
    assert {str(key): value for key, value in labels.items()} == expected
    assert set(expected.values()) == {"Churn", "Not Churn"}


def test_v1_customer_labels_one_at_a_time_as_the_old_environment(served: Served) -> None:
    records = served.frame[list(FEATURE_NAMES)].to_dict("records")
    for record, label in list(zip(records, served.old["labels"], strict=True))[:60]:
        answer = httpx.post(f"{served.url}/v1/customer", json=record, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"Prediction": "churn" if label == 1 else "not churn"}


def test_probabilities_as_the_old_environment(served: Served) -> None:
    records = served.frame[list(FEATURE_NAMES)].to_dict("records")
    old = np.asarray(served.old["probabilities"])
    # All at once (XGBoost's path), and a few at a time (NumPy's tree walk).
    for start, end in [(0, len(records)), *[(i, i + 7) for i in range(0, 70, 7)]]:
        batch = records[start:end]
        answer = httpx.post(f"{served.url}/v2/predict", json={"customers": batch}, timeout=60)
        assert answer.status_code == 200, answer.text
        got = np.asarray([row["churn_probability"] for row in answer.json()])
        # The answer rounds to 6 digits; the model itself agrees within 1e-6 (parity).
        assert np.max(np.abs(got - old[start:end])) <= 1.5e-6


def test_the_model_says_where_it_came_from(served: Served) -> None:
    info = httpx.get(f"{served.url}/v2/model", timeout=30).json()
    assert info["label_rule"] == ">"
    assert info["threshold"] == 0.5
    assert info["origin"].startswith("imported from churn_")
    assert "parity on 3,000 customers: 0 labels differ" in info["origin"]


def test_without_reference_data_drift_and_card_say_there_is_none(served: Served) -> None:
    drift = httpx.get(f"{served.url}/v2/drift", timeout=30)
    assert drift.status_code == 200
    assert drift.json()["reference"] is False
    assert "--reference-data" in drift.json()["message"]
    card = httpx.get(f"{served.url}/v2/model/card.md", timeout=30).text
    assert "no reference profile" in card


def test_a_scaler_on_the_numbers_is_refused_by_name(
    pythons: dict[str, Path], tmp_path: Path
) -> None:
    for name, python in pythons.items():
        model = make(python, "scaled", tmp_path / name)
        refused = churn_import(model, tmp_path / "bentoml")
        assert refused.returncode == 1, name
        assert "Step 'columntransformer' ('remainder': StandardScaler on" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_a_second_import_is_a_no_op(pythons: dict[str, Path], tmp_path: Path) -> None:
    model = make(pythons["notebook"], "notebook", tmp_path)
    first = churn_import(model, tmp_path / "bentoml")
    assert first.returncode == 0, first.stderr
    again = churn_import(model, tmp_path / "bentoml")
    assert again.returncode == 0
    assert again.stdout.startswith("already in the store: " + first.stdout.split()[-1])
    assert "exported" not in again.stderr


def test_a_wheelhouse_without_the_versions_says_which_are_missing(
    pythons: dict[str, Path], tmp_path: Path
) -> None:
    model = make(pythons["older"], "notebook", tmp_path)
    wheels = tmp_path / "wheelhouse"
    wheels.mkdir()
    refused = churn_import(
        model, tmp_path / "bentoml", "--wheelhouse", str(wheels), "--env-cache", str(tmp_path)
    )
    assert refused.returncode == 1
    assert f"uv could not build an environment with {OLDER.summary()}" in refused.stderr
    assert f"from the wheelhouse {wheels}" in refused.stderr
    assert "scikit-learn was not found" in refused.stderr


def test_the_notebooks_requirements_give_the_same_environment(
    pythons: dict[str, Path], tmp_path: Path
) -> None:
    model = make(pythons["notebook"], "notebook", tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "scikit-learn==1.6.1\nxgboost==2.1.4\nnumpy==2.0.2\npandas==2.2.2\njoblib==1.4.2\n"
        "flask==3.0.3\n",
        encoding="utf-8",
    )
    done = churn_import(model, tmp_path / "bentoml", "--requirements", str(requirements))
    assert done.returncode == 0, done.stderr
    assert f"made with {NOTEBOOK.summary()} (from {requirements})" in done.stderr
    assert "building" not in done.stderr  # the environment the pickle's own versions built
