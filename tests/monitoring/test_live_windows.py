"""Live drift through the real service with one worker and one-minute windows: the
routers' own counting, profiling off, and what a reader who compares readings can see."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from churn.record.schema import FEATURE_NAMES
from tests.factories import make_customer
from tests.monitoring.conftest import (
    ONE_MINUTE,
    at_a_new_window,
    drift_gauges,
    drift_once_counted,
    fresh_service,
    in_one_window,
    like_training,
    still_in_window,
)

pytestmark = pytest.mark.slow


def test_with_the_fast_path_off_the_routers_count_as_well(tmp_path: Path) -> None:
    customers = like_training(150, seed=22)[list(FEATURE_NAMES)].to_dict("records")
    with fresh_service(tmp_path, {"CHURN_FAST_PATH": "false", **ONE_MINUTE}) as service:
        ends = in_one_window(40, minutes=1)  # 150 requests: a few seconds
        for customer in customers[:100]:
            answer = httpx.post(f"{service.url}/v1/customer", json=customer, timeout=30)
            assert answer.status_code == 200, answer.text
        for customer in customers[100:]:
            answer = httpx.post(
                f"{service.url}/v2/predict", json={"customers": [customer]}, timeout=30
            )
            assert answer.status_code == 200, answer.text
        still_in_window(ends, "sending 150 customers")
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
