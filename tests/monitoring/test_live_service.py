"""Live drift through the real service with two workers, customers sent on every route
(the one-worker cases are in test_live_windows.py, so that the two run side by side)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from churn.record.schema import FEATURE_NAMES
from tests.conftest import ROOT, LiveService, run_churn
from tests.monitoring.conftest import (
    WINDOW_MINUTES,
    drift_gauges,
    drift_once_counted,
    fresh_service,
    in_one_window,
    like_training,
    shifted,
    still_in_window,
    write,
)

RULES = ROOT / "deploy" / "prometheus" / "churn-drift-rules.yml"

pytestmark = pytest.mark.slow


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[LiveService]:
    env = {"CHURN_WORKERS": "2", "CHURN_DRIFT_WINDOW_MINUTES": str(WINDOW_MINUTES)}
    with fresh_service(tmp_path, env) as service:
        yield service


def send_on_every_route(url: str, customers: pd.DataFrame, folder: Path) -> int:
    """Each customer once, through one of the five routes that score; how many were sent."""
    # About 10 s on a quiet machine, and more beside other tests: 75 s leaves room.
    ends = in_one_window(75)
    records = customers[["CustomerId", *FEATURE_NAMES]].astype({"CustomerId": str})
    rows = records.to_dict("records")
    parts = {"v1": rows[:240], "explain": rows[240:260], "predict": rows[260:660]}
    for customer in parts["v1"]:  # a connection each, so both workers answer some
        answer = httpx.post(f"{url}/v1/customer", json=customer, timeout=30)
        assert answer.status_code == 200, answer.text
    for customer in parts["explain"]:
        answer = httpx.post(f"{url}/v2/explain", json={"customer": customer}, timeout=30)
        assert answer.status_code == 200, answer.text
    for start in range(0, len(parts["predict"]), 50):
        batch = parts["predict"][start : start + 50]
        answer = httpx.post(f"{url}/v2/predict", json={"customers": batch}, timeout=30)
        assert answer.status_code == 200, answer.text
    for route, chunk in (
        ("/v2/predict-file", records[660:960]),
        ("/v1/customerbatch", records[960:]),
    ):
        path = write(chunk, folder / f"{route.strip('/').replace('/', '-')}.csv")
        with path.open("rb") as upload:
            answer = httpx.post(url + route, files={"file": (path.name, upload)}, timeout=60)
        assert answer.status_code == 200, answer.text
    still_in_window(ends, f"sending {len(rows)} customers")
    return len(rows)


def cli_drift(customers: Path, store: Path, out: Path) -> dict[str, Any]:
    done = run_churn("drift", str(customers), "--out", str(out), env={"BENTOML_HOME": str(store)})
    assert done.returncode in (0, 1), done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def assert_same_statistic(service: dict[str, Any], offline: dict[str, Any]) -> None:
    assert service["customers"] == offline["customers"]
    for name, found in offline["features"].items():
        assert service["features"][name]["psi"] == pytest.approx(found["psi"], abs=1e-6), name
        assert service["features"][name]["status"] == found["status"], name
    assert service["score"]["psi"] == pytest.approx(offline["score"]["psi"], abs=1e-6)


def test_customers_like_the_training_data_do_not_drift_and_all_are_counted(
    two_workers: LiveService, tmp_path: Path
) -> None:
    customers = like_training(1200, seed=21)
    sent = send_on_every_route(two_workers.url, customers, tmp_path)
    report = drift_once_counted(two_workers.url, sent)
    assert report["customers"] == sent == 1200
    assert report["workers"] == 2  # both workers scored some, and both are summed
    assert report["rolling"]["customers"] == sent
    assert report["drifted"] == []
    statuses = {name: f["status"] for name, f in report["features"].items()}
    assert set(statuses.values()) == {"ok"}, statuses
    assert report["score"]["status"] == "ok"
    age = report["features"]["Age"]
    assert len(age["bins"]) == len(age["reference"]) == len(age["current"])
    assert sum(age["current"]) == pytest.approx(1, abs=0.01)  # shares to 0.1%
    # `churn drift` on the same customers gives the service's statistic.
    offline = cli_drift(
        write(customers, tmp_path / "all.csv"), two_workers.home, tmp_path / "r.html"
    )
    assert_same_statistic(report, offline)


def test_older_customers_all_in_germany_drift_in_age_and_geography_not_credit_score(
    two_workers: LiveService, tmp_path: Path
) -> None:
    customers = shifted(like_training(1200, seed=21))
    sent = send_on_every_route(two_workers.url, customers, tmp_path)
    report = drift_once_counted(two_workers.url, sent)
    assert report["customers"] == sent
    features = report["features"]
    assert features["Age"]["status"] == features["Geography"]["status"] == "drift"
    assert features["CreditScore"]["status"] == "ok"
    assert {"Age", "Geography"} <= set(report["drifted"])
    assert report["rolling"]["features"]["Age"]["status"] == "drift"
    offline = cli_drift(
        write(customers, tmp_path / "all.csv"), two_workers.home, tmp_path / "r.html"
    )
    assert_same_statistic(report, offline)

    # The same figures as gauges on /metrics, within the workers' 15 s refresh.
    metrics = gauges_once(
        two_workers.url, 'churn_drift_status{feature="Age",minutes="2",window="since_start"}', 2
    )
    assert metrics['churn_drift_customers{minutes="2",window="since_start"}'] == sent
    assert metrics[
        'churn_drift_psi{feature="Age",minutes="2",window="since_start"}'
    ] == pytest.approx(features["Age"]["psi"], abs=1e-6)
    assert (
        metrics['churn_drift_status{feature="CreditScore",minutes="2",window="since_start"}'] == 0
    )
    # Every metric the alert rules watch is one the service exports.
    watched = set(re.findall(r"churn_drift_\w+", RULES.read_text()))
    assert watched <= {key.split("{")[0] for key in metrics}


def gauges_once(url: str, key: str, value: float) -> dict[str, float]:
    deadline = time.monotonic() + 40
    while True:
        found = drift_gauges(url)
        if found.get(key) == value or time.monotonic() > deadline:
            return found
        time.sleep(1)
