"""Shared fixtures: customer factories, an isolated BentoML store, a small trained model."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest

# Nothing a test does may touch the developer's own ~/bentoml: point BentoML at a
# throw-away home before it is first imported.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="churn-tests-bentoml-")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

from churn.model.synth import write_synthetic_csv  # noqa: E402
from churn.model.training import TrainingResult  # noqa: E402
from churn.workflows.training import train  # noqa: E402
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
    from churn.serving.bentoml_internals import model_store_at

    home = tmp_path / "bentoml"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("BENTOML_HOME", str(home))
    with model_store_at(home / "models"):
        yield home


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


def run_outside(
    *command: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `cwd` as in another environment: with none of this process's Spark
    or Python settings (plus `env`), so that only what it installed itself is found."""
    clean = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("PYSPARK_", "SPARK_", "PYTHON", "VIRTUAL_ENV"))
    }  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=clean | (env or {}), capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def uv(*args: str, cwd: Path = ROOT) -> None:
    """uv, with the index online: the lock's wheels come from the cache `make setup`
    filled, but an offline resolve also needs their metadata, which `uv sync` does not
    keep (on a fresh machine it failed: "numpy==2.4.6 needs to be downloaded")."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    # Bytecode is not what is tested; compiling pyspark would take most of the time.
    env["UV_COMPILE_BYTECODE"] = "0"
    done = subprocess.run(
        [str(shutil.which("uv")), *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="session")
def batch_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The batch wheel (deploy/batch/), built from this tree as `make spark-wheel` does."""
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH: the batch wheel is built with `uv build` (make setup)")
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--quiet", "--wheel", "--out-dir", str(out), str(ROOT / "deploy" / "batch"))
    (built,) = out.glob("churn_batch-*.whl")
    return built


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        time.sleep(0.05)


def answers(url: str) -> bool:
    """Whether GET `url` answers 200 now; a server not (or no longer) listening does not."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        if answers(url):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Stop a server and everything it started, by its process group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass(frozen=True)
class LiveService:
    url: str
    home: Path
    log: Path


def start_service(
    home: Path, log: Path, extra_env: dict[str, str] | None = None
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(home), "CHURN_WORKERS": "1", **(extra_env or {})}
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "bentoml"), "serve", "service:ChurnService",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return f"http://127.0.0.1:{port}", process


@pytest.fixture(scope="session")
def bundled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BentoML home holding the bundled model, imported the way `make setup` does."""
    home = tmp_path_factory.mktemp("service-bentoml")
    result = run_churn(
        "import-model", str(ROOT / "models" / "churn_prediction_model_v1_0.joblib"),
        env={"BENTOML_HOME": str(home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return home


def home_of_its_own(bundled_store: Path, folder: Path) -> Path:
    """A BentoML home with the bundled model, for one long-lived server: a server clears
    the metrics directory of its home when it starts, which would reset another's there
    (with tests in parallel, any test's server may start while the other serves)."""
    home = folder / "bentoml"
    shutil.copytree(bundled_store / "models", home / "models")
    return home


@pytest.fixture(scope="session")
def live_service(
    bundled_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveService]:
    """The real `bentoml serve` on a free loopback port, for the whole session."""
    scratch = tmp_path_factory.mktemp("live")
    home, log = home_of_its_own(bundled_store, scratch), scratch / "service.log"
    # Drift figures are shown when their window closes: a minute's, for the tests.
    url, process = start_service(home, log, {"CHURN_DRIFT_WINDOW_MINUTES": "1"})
    try:
        wait_for(url + "/readyz", process)
        yield LiveService(url, home, log)
    finally:
        stop(process)


# What `churn import-model` records for a pickle made elsewhere (issue 26, part 1),
# here for the bundled model's own booster: labelled as predict() did, strictly above 0.5.
IMPORTED_FILE = "churn_prediction_model_v1_0.joblib"
IMPORTED_SHA256 = "ab" * 32


def imported_metadata(base: Any, source_sha256: str = IMPORTED_SHA256) -> Any:
    """`base` (a ModelMetadata) as an import from elsewhere records it: no training
    figures, provenance, the label rule of predict()."""
    from churn.model.artifact import ModelMetadata
    from churn.record.provenance import Parity, Provenance

    return ModelMetadata(
        model_version="1.0",
        artifact_file=IMPORTED_FILE,
        artifact_sha256=source_sha256,
        threshold=0.5,
        threshold_rule="what the model's predict() did: churn when the probability is above 0.5",
        label_rule=">",
        libraries={"xgboost-cpu": "3.2.0"},
        features=base.features,
        feature_schema=base.feature_schema,
        provenance=Provenance(
            source_file=IMPORTED_FILE,
            source_sha256=source_sha256,
            made_with={"scikit-learn": "1.6.1", "xgboost": "2.1.4"},
            exported_with={"python": "3.9.21", "scikit-learn": "1.6.1", "xgboost": "2.1.4"},
            imported_at="2026-12-06T07:00:00+00:00",
            parity=Parity(
                customers=3000,
                probe="generated: every category and each feature's range",
                labels_differ=0,
                max_abs_probability_diff=0.0,
            ),
        ),
    )


@dataclass(frozen=True)
class ImportedService:
    url: str
    tag: str  # CHURN_MODEL_TAG: the imported model, beside the bundled one


@pytest.fixture(scope="session")
def imported_service(
    bundled_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ImportedService]:
    """The service on a model imported from elsewhere (`imported_metadata`), chosen by
    CHURN_MODEL_TAG in a store that holds the bundled model too."""
    from churn.model.store import load_model, save_tree_model
    from churn.serving.bentoml_internals import model_store_at

    scratch = tmp_path_factory.mktemp("imported")
    home = home_of_its_own(bundled_store, scratch)
    with model_store_at(home / "models"):
        bundled = load_model()
        tag = str(save_tree_model(bundled.tree, imported_metadata(bundled.metadata)).tag)
        # The bundled model is the newest again: `latest` is not what the service serves.
        save_tree_model(bundled.tree, bundled.metadata)
    url, process = start_service(home, scratch / "service.log", {"CHURN_MODEL_TAG": tag})
    try:
        wait_for(url + "/readyz", process)
        yield ImportedService(url, tag)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def routes_only(bundled_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service with the fast path off (CHURN_FAST_PATH=false), where every request goes
    through BentoML's and FastAPI's routes, in a BentoML home of its own."""
    scratch = tmp_path_factory.mktemp("routes-only")
    home = home_of_its_own(bundled_store, scratch)
    url, process = start_service(home, scratch / "service.log", {"CHURN_FAST_PATH": "false"})
    try:
        wait_for(url + "/readyz", process)
        yield url
    finally:
        stop(process)


@pytest.fixture(params=["live_service", "routes_only"])
def either_url(request: pytest.FixtureRequest) -> str:
    """The URL of the live service with the fast path on (as shipped), then off."""
    service = request.getfixturevalue(request.param)
    return service.url if isinstance(service, LiveService) else str(service)


BUNDLED_METADATA = ROOT / "models" / "churn_prediction_model_v1_0.metadata.json"
# The risk bands as churn/scoring/scorer.py's docstring and the README ("Risk bands") define
# them: low below the threshold, high from 0.5 (and not below the threshold), medium
# between. Restated here, not imported, so that the oracle shares no code with the
# service: a wrong boundary in the service then disagrees with this one.
HIGH_RISK_FROM = 0.5


@dataclass(frozen=True)
class Oracle:
    """The bundled model's answers computed directly from its pipeline, with none of
    the project's scoring code: what every route must agree with."""

    pipeline: Any
    threshold: float
    features: tuple[str, ...]
    version: str

    def probabilities(self, customers: list[dict[str, Any]]) -> np.ndarray:
        frame = pd.DataFrame([{name: c[name] for name in self.features} for c in customers])
        return np.asarray(self.pipeline.predict_proba(frame)[:, 1], dtype=np.float64)

    def probability(self, customer: dict[str, Any]) -> float:
        return float(self.probabilities([customer])[0])

    def is_churn(self, probability: float) -> bool:
        return probability >= self.threshold

    def label(self, probability: float) -> str:
        """As /v2 and /v1/customer spell it; /v1/customerbatch capitalises each word."""
        return "churn" if self.is_churn(probability) else "not churn"

    def band(self, probability: float) -> str:
        if probability >= max(HIGH_RISK_FROM, self.threshold):
            return "high"
        return "medium" if probability >= self.threshold else "low"


@pytest.fixture(scope="session")
def oracle() -> Oracle:
    """The bundled joblib pipeline, loaded only after its SHA-256 matched the digest in
    its metadata file (a joblib file is a pickle: loading it runs code)."""
    metadata = json.loads(BUNDLED_METADATA.read_text(encoding="utf-8"))
    artifact = BUNDLED_METADATA.parent / metadata["artifact_file"]
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert digest == metadata["artifact_sha256"], f"{artifact.name} does not match its metadata"
    return Oracle(
        pipeline=joblib.load(artifact),
        threshold=float(metadata["threshold"]),
        features=tuple(metadata["features"]),
        version=str(metadata["model_version"]),
    )
