"""Issue 27, item 1: what a client without a key, or a full disk, did to /metrics and the
workers, against the real service."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    LiveService,
    home_of_its_own,
    start_service,
    stop,
    wait_for,
    wait_until,
)
from tests.factories import EXAMPLE_CUSTOMER

pytestmark = pytest.mark.slow
KEY = "metrics-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@contextlib.contextmanager
def keyed_service(folder: Path, bundled_store: Path) -> Iterator[LiveService]:
    home = home_of_its_own(bundled_store, folder)
    url, process = start_service(home, folder / "service.log", {"CHURN_API_KEYS": KEY})
    try:
        wait_for(url + "/readyz", process)
        yield LiveService(url, home, folder / "service.log")
    finally:
        stop(process)


def series(url: str) -> set[str]:
    """Every series on /metrics, by name and labels, without its value."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {line.rpartition(" ")[0] for line in text.splitlines() if not line.startswith("#")}


def test_requests_without_a_key_add_no_series_and_no_bytes(
    bundled_store: Path, tmp_path: Path
) -> None:
    # Before: with CHURN_API_KEYS set, 200 requests to /unauth-$i-$RANDOM added 3,800
    # http_response_code="401" lines; /metrics grew from 9.6 KB to 769 KB, and the
    # metrics directory by about 8.5 KB per request, kept until restart.
    with keyed_service(tmp_path, bundled_store) as service:
        answer = httpx.post(f"{service.url}/v2/predict", json={"customers": []}, headers=AUTH)
        assert answer.status_code == 200
        before = series(service.url)
        metrics_dir = service.home / "prometheus_multiproc_dir"
        size = sum(p.stat().st_size for p in metrics_dir.iterdir())
        with httpx.Client(base_url=service.url, timeout=30) as client:
            for i in range(200):
                refused = client.get(f"/unauth-{i}-{random.randrange(32768)}")
                assert refused.status_code == 401
            assert client.post("/v2/predict", json={"customers": []}).status_code == 401
            assert client.get("/nowhere-at-all", headers=AUTH).status_code == 404
            assert client.delete("/v2/predict", headers=AUTH).status_code == 405
        after = series(service.url)
        assert after == before, sorted(after ^ before)
        assert sum(p.stat().st_size for p in metrics_dir.iterdir()) == size
        assert not any("unauth" in line or "nowhere" in line for line in after)
        # An answered request is counted under its route, also when sent with slashes
        # to merge; and under "unmatched" on a path that is no route.
        customer = {"CustomerId": "1", **EXAMPLE_CUSTOMER}
        answer = httpx.post(f"{service.url}//v1/customer", json=customer, headers=AUTH)
        assert answer.status_code == 200
        counted = series(service.url) - before
        endpoints = {m for line in counted for m in re.findall(r'endpoint="([^"]*)"', line)}
        assert endpoints == {"/v1/customer"}


def test_a_full_metrics_and_drift_disk_costs_metrics_never_answers(
    bundled_store: Path, tmp_path: Path
) -> None:
    # Before: with the metrics directory on a full 2 MB tmpfs, the first /v2/predict
    # calls got an empty reply; then every request timed out, and both workers
    # restarted every 10 s with nothing in the log.
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    home = home_of_its_own(bundled_store, tmp_path)
    mounts = [home / "prometheus_multiproc_dir", home / "churn-drift"]
    for mount in mounts:
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        url, process = start_service(home, tmp_path / "service.log", {"CHURN_WORKERS": "2"})
        try:
            wait_for(url + "/readyz", process)
            # /readyz answers once one worker is up; the other may still be starting.
            log_file = tmp_path / "service.log"
            wait_until(
                lambda: log_file.read_text().count("Service churn initialized") >= 2,
                "both workers started",
                60,
            )
            for mount in mounts:
                fill(mount)
            customers = [EXAMPLE_CUSTOMER, EXAMPLE_CUSTOMER]
            with httpx.Client(base_url=url, timeout=30) as client:
                for _ in range(10):
                    for new in (True, False):  # new connections reach both workers
                        headers = {"Connection": "close"} if new else {}
                        answer = client.post(
                            "/v2/predict", json={"customers": customers}, headers=headers
                        )
                        assert answer.status_code == 200, answer.text
                        assert client.post("/v1/customer", json=EXAMPLE_CUSTOMER).status_code == 200
                        assert client.get("/v2/model").status_code == 200
                        assert client.get("/v2/drift").status_code == 200
                        assert client.get("/nowhere").status_code == 404
            assert process.poll() is None
            # Each worker writes its drift counts once a second, in a thread of its own.
            wait_until(
                lambda: "drift counts" in log_file.read_text(), "a warning of drift counts", 60
            )
            assert process.poll() is None
            log = log_file.read_text()
            assert log.count("Service churn initialized") == 2  # no worker restarted
        finally:
            stop(process)
    finally:
        for mount in mounts:
            subprocess.run(["umount", str(mount)], check=False)


def fill(mount: Path) -> None:
    """Fill the file system at `mount` to the last byte."""
    with contextlib.suppress(OSError), (mount / "filler").open("wb", buffering=0) as filler:
        while True:
            filler.write(b"\0" * 4096)
    assert shutil.disk_usage(mount).free < 4096
