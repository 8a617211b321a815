"""Live drift through the real service with two workers, customers sent on every route."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from churn.model.artifact import MODELS_DIR
from churn.record.schema import FEATURE_NAMES
from tests.conftest import ROOT, LiveService, run_churn, start_service, stop, wait_for
from tests.factories import make_customer
from tests.monitoring.conftest import like_training, shifted, write

BUNDLED = MODELS_DIR / "churn_prediction_model_v1_0.joblib"
RULES = ROOT / "deploy" / "prometheus" / "churn-drift-rules.yml"

pytestmark = pytest.mark.slow


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
# every route takes about a minute on a busy machine, so those tests' windows are longer.
ONE_MINUTE = {"CHURN_DRIFT_WINDOW_MINUTES": "1"}
WINDOW_MINUTES = 2


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[LiveService]:
    env = {"CHURN_WORKERS": "2", "CHURN_DRIFT_WINDOW_MINUTES": str(WINDOW_MINUTES)}
    with fresh_service(tmp_path, env) as service:
        yield service


def at_a_new_window(minutes: int = WINDOW_MINUTES) -> None:
    """Wait for a window to open, so that what is sent next falls in one window."""
    seconds = 60 * minutes
    if time.time() % seconds > 2:
        time.sleep(seconds + 0.2 - time.time() % seconds)


def send_on_every_route(url: str, customers: pd.DataFrame, folder: Path) -> int:
    """Each customer once, through one of the five routes that score; how many were sent."""
    at_a_new_window()
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
    return len(rows)


def drift_once_counted(url: str, customers: int) -> dict[str, Any]:
    """GET /v2/drift once the window they were sent in has closed and is shown."""
    deadline = time.monotonic() + 60 * WINDOW_MINUTES + 30
    while True:
        report: dict[str, Any] = httpx.get(f"{url}/v2/drift", timeout=30).json()
        if report["rolling"]["customers"] >= customers or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


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
        text = httpx.get(f"{url}/metrics", timeout=30).text
        found = {
            name: float(number)
            for name, number in re.findall(r"^(churn_drift_\S+)\s+(\S+)$", text, re.M)
        }
        if found.get(key) == value or time.monotonic() > deadline:
            return found
        time.sleep(1)


def test_with_the_fast_path_off_the_routers_count_as_well(tmp_path: Path) -> None:
    customers = like_training(150, seed=22)[list(FEATURE_NAMES)].to_dict("records")
    with fresh_service(tmp_path, {"CHURN_FAST_PATH": "false", **ONE_MINUTE}) as service:
        at_a_new_window(1)
        for customer in customers[:100]:
            answer = httpx.post(f"{service.url}/v1/customer", json=customer, timeout=30)
            assert answer.status_code == 200, answer.text
        for customer in customers[100:]:
            answer = httpx.post(
                f"{service.url}/v2/predict", json={"customers": [customer]}, timeout=30
            )
            assert answer.status_code == 200, answer.text
        report = drift_once_counted(service.url, len(customers))
    assert report["customers"] == report["rolling"]["customers"] == 150
    assert report["features"]["Age"]["status"] == "ok"


def test_with_profiling_off_drift_says_so_and_scoring_goes_on(tmp_path: Path) -> None:
    with fresh_service(tmp_path, {"CHURN_DRIFT_PROFILING": "false"}) as service:
        scored = httpx.post(f"{service.url}/v1/customer", json=make_customer(), timeout=30)
        assert scored.status_code == 200
        refused = httpx.get(f"{service.url}/v2/drift", timeout=30)
        assert refused.status_code == 409
        assert refused.json()["error"] == "drift_profiling_off"
        assert "CHURN_DRIFT_PROFILING=false" in refused.json()["message"]
        assert not list(service.home.rglob("worker-*.counts"))


def drift_gauges(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        name: float(number)
        for name, number in re.findall(r"^(churn_drift_\S+)\s+(\S+)$", text, re.M)
    }


def test_drift_shows_no_customer_to_a_reader_who_compares_readings(tmp_path: Path) -> None:
    # Issue 27: after one /v1/customer on a fresh service the keyless /metrics PSI gauges
    # named that customer's bin for 7 of 10 features; /v2/drift showed each bin's share
    # to 6 decimals while "insufficient"; and read before and after one request, it gave
    # all ten bins of the new customer.
    customers = like_training(151, seed=23)[list(FEATURE_NAMES)].to_dict("records")
    with fresh_service(tmp_path, ONE_MINUTE) as service:
        at_a_new_window(1)
        answer = httpx.post(f"{service.url}/v1/customer", json=customers[0], timeout=30)
        assert answer.status_code == 200
        time.sleep(16)  # counted within a second; the gauges set every 15 s
        one = httpx.get(f"{service.url}/v2/drift", timeout=30).json()
        for window in (one, one["rolling"]):
            for feature in [*window["features"].values(), window["score"]]:
                assert feature["psi"] is None
                assert feature["current"] is None
        gauges = drift_gauges(service.url)
        assert all(
            value != value  # NaN
            for name, value in gauges.items()
            if name.startswith("churn_drift_psi")
        ), gauges
        answer = httpx.post(
            f"{service.url}/v2/predict", json={"customers": customers[1:]}, timeout=30
        )
        assert answer.status_code == 200
        before = drift_once_counted(service.url, 150)
        assert before["rolling"]["customers"] >= 150
        time.sleep(16)  # the gauges too show the window that closed
        gauges = drift_gauges(service.url)
        answer = httpx.post(f"{service.url}/v1/customer", json=customers[0], timeout=30)
        assert answer.status_code == 200
        time.sleep(16)
        after = httpx.get(f"{service.url}/v2/drift", timeout=30).json()
        assert after["rolling"]["until"] == before["rolling"]["until"]  # within a minute
        assert after == before
        assert drift_gauges(service.url) == gauges
