"""Issue 27, item 4: what a bad file in the drift directory, or a read-only one, or a
second service on the same BENTOML_HOME did to the real service; each must cost drift
figures at most, never an answer, a worker or the gauges' thread."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from churn.record.schema import FEATURE_NAMES
from tests.conftest import LiveService, start_service, stop, wait_for, wait_until
from tests.monitoring.conftest import fresh_service, like_training

pytestmark = pytest.mark.slow
BATCH = 150  # a worker's window needs 100 customers to be shown


def customers(count: int, seed: int) -> list[dict[str, Any]]:
    frame = like_training(count, seed=seed)[list(FEATURE_NAMES)]
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    folder = tmp_path_factory.mktemp("drift-faults")
    env = {"CHURN_WORKERS": "2", "CHURN_DRIFT_WINDOW_MINUTES": "1"}
    with fresh_service(folder, env) as started:
        score(started.url, customers(4, seed=1))  # each worker has a file from here on
        yield started


def score(url: str, batch: list[dict[str, Any]], tries: int = 1) -> None:
    for _ in range(tries):  # a new connection each: both workers answer some
        answer = httpx.post(f"{url}/v2/predict", json={"customers": batch}, timeout=30)
        assert answer.status_code == 200, answer.text


def worker_files(home: Path) -> list[Path]:
    """The workers' drift files, wherever this version keeps them under BENTOML_HOME."""
    wait_until(lambda: bool(list(home.rglob("worker-*.counts"))), "a worker's drift file")
    return sorted(home.rglob("worker-*.counts"))


def drift(url: str) -> httpx.Response:
    return httpx.get(f"{url}/v2/drift", timeout=10)


@contextlib.contextmanager
def planted(path: Path) -> Iterator[Path]:
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def test_a_worker_file_truncated_costs_no_answer_and_no_worker(service: LiveService) -> None:
    # Before: the next 2-customer /v2/predict got an empty reply (the worker died on a
    # memory-map error) and the worker restarted with its counts lost.
    for path in worker_files(service.home):
        os.truncate(path, 0)
    score(service.url, customers(2, seed=2), tries=10)
    assert drift(service.url).status_code == 200


def test_a_fifo_holds_neither_drift_nor_the_gauges(service: LiveService) -> None:
    # Before: /v2/drift hung, and the gauges' thread stuck for good.
    folder = worker_files(service.home)[0].parent
    with planted(folder / "worker-0-0.counts") as fifo:
        os.mkfifo(fifo, 0o600)
        answer = drift(service.url)
        assert answer.status_code == 200, answer.text
        wait_for_a_new_minute()
        score(service.url, customers(BATCH, seed=3))
        wait_until(
            lambda: (
                (metric(service.url, "churn_drift_customers", 'window="rolling"') or 0) >= BATCH
            ),
            f"the rolling window's {BATCH} customers on /metrics",
            90,
        )
    assert "skipped worker-0-0.counts" in service.log.read_text()


def wait_for_a_new_minute() -> None:
    """So that a batch sent now is counted in one window, shown when the minute ends."""
    time.sleep(60.5 - time.time() % 60 if time.time() % 60 > 50 else 0)


def metric(url: str, name: str, label: str) -> float | None:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{") and label in line:
            return float(line.split()[-1])
    return None


@pytest.mark.parametrize("header", [False, True], ids=["random", "our-header-random-counts"])
def test_random_bytes_of_the_right_length_are_skipped(service: LiveService, header: bool) -> None:
    # Before: /v2/drift answered a plain-text 500 for good.
    real = worker_files(service.home)[0]
    data = np.frombuffer(real.read_bytes(), dtype=np.int64).copy()
    noise = np.random.default_rng(4).integers(-(2**62), 2**62, len(data))
    if header:
        noise[:8] = data[:8]
    with planted(real.with_name("worker-1-1.counts")) as forged:
        forged.write_bytes(noise.tobytes())
        answer = drift(service.url)
    assert answer.status_code == 200, answer.text
    assert "skipped worker-1-1.counts" in service.log.read_text()


def test_a_link_or_a_file_of_another_size_is_not_read(service: LiveService, tmp_path: Path) -> None:
    # Before: a symlink to a 256 MB file was read whole on every /v2/drift and every 15 s
    # in each worker; a link to a file that looks like counts was counted.
    real = worker_files(service.home)[0]
    before = drift(service.url).json()["workers"]
    elsewhere = tmp_path / "counts"
    elsewhere.write_bytes(real.read_bytes())
    with planted(real.with_name("worker-2-2.counts")) as link:
        link.symlink_to(elsewhere)
        answer = drift(service.url)
        assert answer.status_code == 200, answer.text
        assert answer.json()["workers"] == before
    big = tmp_path / "big"
    with big.open("wb") as handle:
        handle.truncate(256 << 20)
    with planted(real.with_name("worker-3-3.counts")) as link:
        link.symlink_to(big)
        assert drift(service.url).status_code == 200
    log = service.log.read_text()
    assert "skipped worker-2-2.counts" in log
    assert "skipped worker-3-3.counts" in log


def test_the_directory_read_only_when_the_workers_restart(service: LiveService) -> None:
    # Before: OSError [Errno 30] in ChurnService.__init__; every worker restarted in a
    # loop and every request failed until the directory was writable again.
    folder = worker_files(service.home)[0].parent
    pids = {int(path.name.split("-")[1]) for path in worker_files(service.home)}
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: ready(service.url), "a worker answering again", 60)
        score(service.url, customers(2, seed=5), tries=10)
        assert drift(service.url).status_code == 200
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def ready(url: str) -> bool:
    try:
        return (
            httpx.post(
                f"{url}/v2/predict", json={"customers": customers(1, seed=6)}, timeout=5
            ).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


def test_a_second_service_on_the_same_home_leaves_the_first_ones_counts_alone(
    service: LiveService,
) -> None:
    # Before: it deleted the first service's files, and the first then reported the
    # second's customers as its own.
    score(service.url, customers(2, seed=7))
    mine = set(worker_files(service.home))
    log = service.home.parent / "second.log"
    url, second = start_service(service.home, log, {"CHURN_DRIFT_WINDOW_MINUTES": "1"})
    try:
        wait_for(url + "/readyz", second, timeout=300)
        score(url, customers(BATCH, seed=8))
        time.sleep(2)  # published within a second
        assert all(path.exists() for path in mine)
        ours = {path.parent for path in mine}
        assert len(ours) == 1
        theirs = [p for p in service.home.rglob("worker-*.counts") if p.parent not in ours]
        assert theirs  # in a directory of the second service's own
    finally:
        stop(second)
    assert all(path.exists() for path in mine)
