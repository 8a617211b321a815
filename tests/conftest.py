"""Shared fixtures: customer factories, an isolated BentoML store, a small trained model."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Nothing a test does may touch the developer's own ~/bentoml: point BentoML at a
# throw-away home before it is first imported.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="churn-tests-bentoml-")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

from churn.synth import write_synthetic_csv  # noqa: E402
from churn.training import TrainingResult, train  # noqa: E402
from tests.factories import make_customer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_DATA = ROOT.parent / "shared" / "data" / "Churn_Modelling.csv"
CHURN = str(Path(sys.executable).parent / "churn")


@pytest.fixture
def customer_factory() -> Callable[..., dict[str, Any]]:
    return make_customer


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write text (or bytes) to a CSV file in the test's own folder."""

    def write(content: str | bytes, name: str = "customers.csv") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture
def model_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty BentoML model store for this test only, in-process and for subprocesses."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models.model import ModelStore

    home = tmp_path / "bentoml"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("BENTOML_HOME", str(home))
    previous = BentoMLContainer.model_store.get()
    BentoMLContainer.model_store.set(ModelStore(home / "models"))
    yield home
    BentoMLContainer.model_store.set(previous)


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_csv(tmp_path_factory.mktemp("data") / "synthetic.csv", 3000, seed=7)


@pytest.fixture(scope="session")
def trained(synthetic_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    """A small model trained once per session on synthetic data."""
    return train(synthetic_csv, tmp_path_factory.mktemp("model"), seed=7)


def run_churn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Invoke the installed `churn` command as a user would."""
    return subprocess.run(
        [CHURN, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )
