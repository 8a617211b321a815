"""Customers for the model-health tests (drawn like the training data, and shifted), the
parts of a live profile with a clock the test sets, and a fresh live service with the
waits its drift windows need."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from churn.model.artifact import MODELS_DIR
from churn.model.synth import synthesize
from churn.model.training import TrainingResult
from churn.monitoring.profile import Binner, ReferenceProfile, input_columns
from churn.record.schema import FEATURE_NAMES, GEOGRAPHIES
from churn.scoring.scorer import Scorer
from tests.conftest import LiveService, run_churn, start_service, stop, wait_for

SHIFTED_AGE = 20
BUNDLED = MODELS_DIR / "churn_prediction_model_v1_0.joblib"


def like_training(rows: int, seed: int) -> pd.DataFrame:
    """Customers in the public layout, drawn as the bundled model's training data was."""
    return synthesize(rows, seed=seed)


def customers(rows: int, seed: int) -> pd.DataFrame:
    """The model's features of `like_training` customers, Geography as a category."""
    features = like_training(rows, seed)[list(FEATURE_NAMES)]
    features["Geography"] = pd.Categorical(features["Geography"], categories=list(GEOGRAPHIES))
    return features


def shifted(customers: pd.DataFrame) -> pd.DataFrame:
    """The same customers 20 years older (the schema stops at 100) and all in Germany."""
    moved = customers.copy()
    moved["Age"] = np.minimum(moved["Age"] + SHIFTED_AGE, 100)
    moved["Geography"] = "Germany"
    return moved


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


class Clock:
    """Time as the test sets it, for the rolling window."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def parts(trained: TrainingResult) -> tuple[Scorer, ReferenceProfile, Binner]:
    profile = ReferenceProfile.model_validate(trained.metadata.reference_profile)
    return Scorer(trained.tree, 0.3), profile, Binner(profile, input_columns(trained.tree))


@contextlib.contextmanager
def fresh_service(folder: Path, env: dict[str, str]) -> Iterator[LiveService]:
    """The service on the bundled model in a store of its own: counts from nothing."""
    home = folder / "bentoml"
    imported = run_churn("import-model", str(BUNDLED), env={"BENTOML_HOME": str(home)})
    assert imported.returncode == 0, imported.stderr
    log = folder / "service.log"
    url, process = start_service(home, log, env)
    try:
        wait_for(url + "/readyz", process, timeout=300)
        yield LiveService(url, home, log)
    finally:
        stop(process)


# Figures are shown when their window closes: short windows, for the tests. Sending on
# every route takes about 10 s on a quiet machine and more beside other tests, so those
# tests' windows are longer.
ONE_MINUTE = {"CHURN_DRIFT_WINDOW_MINUTES": "1"}
WINDOW_MINUTES = 2


def in_one_window(room: float, minutes: int = WINDOW_MINUTES) -> float:
    """Wait, if the window now open has less than `room` seconds left, for the next to
    open, so that what is sent next falls in one window; when that window ends."""
    seconds = 60 * minutes
    left = seconds - time.time() % seconds
    if left < room:
        time.sleep(left + 0.2)
        left = seconds - time.time() % seconds
    return time.time() + left


def at_a_new_window(minutes: int = WINDOW_MINUTES) -> float:
    """Wait for a window to open (unless one opened under 2 s ago); when it ends."""
    return in_one_window(60 * minutes - 2, minutes)


def still_in_window(ends: float, what: str) -> None:
    """What was sent fell in one window, or the test says the machine was too slow."""
    late = time.time() - ends
    assert late < 0, f"{what} ended {late:.1f} s after its drift window: the machine is too busy"


def drift_once_counted(url: str, customers: int) -> dict[str, Any]:
    """GET /v2/drift once the window they were sent in has closed and is shown."""
    deadline = time.monotonic() + 60 * WINDOW_MINUTES + 30
    while True:
        report: dict[str, Any] = httpx.get(f"{url}/v2/drift", timeout=30).json()
        if report["rolling"]["customers"] >= customers or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


def drift_gauges(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        name: float(number)
        for name, number in re.findall(r"^(churn_drift_\S+)\s+(\S+)$", text, re.M)
    }
