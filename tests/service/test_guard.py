"""API keys, body limits, request ids and the access log, on a second live service."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bentoml
import httpx
import pytest

from churn.clients.client import ChurnClient, ServiceError
from tests.conftest import (
    LiveService,
    answers,
    home_of_its_own,
    start_service,
    stop,
    wait_for,
    wait_until,
)
from tests.factories import BANK_COLUMNS, EXAMPLE_CUSTOMER, bank_row

KEYS = ("first-key-0123456789", "second-key-abcdefghij")


@pytest.fixture(scope="module")
def guarded(bundled_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    scratch = tmp_path_factory.mktemp("guarded")
    home, log = home_of_its_own(bundled_store, scratch), scratch / "service.log"
    url, process = start_service(
        home,
        log,
        {"CHURN_API_KEYS": ",".join(KEYS), "CHURN_MAX_UPLOAD_MB": "1", "CHURN_MAX_ROWS": "50"},
    )
    try:
        wait_for(url + "/readyz", process)
        yield LiveService(url, home, log)
    finally:
        stop(process)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("POST", "/v1/customer", EXAMPLE_CUSTOMER),
        ("POST", "/v2/predict", {"customers": [EXAMPLE_CUSTOMER]}),
        ("POST", "/v2/explain", {"customer": EXAMPLE_CUSTOMER}),
        ("GET", "/v2/model", None),
    ],
)
def test_routes_need_a_valid_key(
    guarded: LiveService, method: str, route: str, body: object
) -> None:
    url = guarded.url + route
    for headers in ({}, auth("wrong"), {"Authorization": KEYS[0]}):
        refused = httpx.request(method, url, json=body, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"
        assert refused.headers["www-authenticate"] == "Bearer"
    for key in KEYS:
        assert httpx.request(method, url, json=body, headers=auth(key)).status_code == 200


@pytest.mark.parametrize(
    ("route", "status"),
    [("//v2/model", 401), ("//v1//customer", 401), ("///docs.json", 200), ("//livez", 200)],
)
def test_keys_apply_to_the_merged_path(guarded: LiveService, route: str, status: int) -> None:
    # The guard merges repeated slashes before it checks the key, so a route is open or
    # closed under any spelling, and the answer is the merged route's.
    method, body = ("POST", EXAMPLE_CUSTOMER) if "customer" in route else ("GET", None)
    response = httpx.request(method, guarded.url + route, json=body)
    assert response.status_code == status
    if status == 200:
        assert response.content == httpx.get(guarded.url + re.sub("/+", "/", route)).content
    keyed = httpx.request(method, guarded.url + route, json=body, headers=auth(KEYS[0]))
    assert keyed.status_code == 200


def test_probes_and_metrics_stay_open(guarded: LiveService) -> None:
    for route in ("/livez", "/readyz", "/metrics"):
        assert httpx.get(guarded.url + route).status_code == 200


def test_client_passes_the_key_from_the_environment(
    guarded: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_API_KEY", KEYS[1])
    with ChurnClient(guarded.url) as client:
        assert client.predict_one(EXAMPLE_CUSTOMER).model_version == "1.0"
    with ChurnClient(guarded.url, api_key="bad") as client, pytest.raises(ServiceError) as caught:
        client.model_info()
    assert caught.value.status == 401


def test_large_uploads_are_refused_before_reading(guarded: LiveService) -> None:
    big = (BANK_COLUMNS + "\n" + (bank_row() + "\n") * 20_000).encode()
    assert len(big) > 1 << 20
    response = httpx.post(
        guarded.url + "/v2/predict-file",
        files={"file": ("big.csv", big, "text/csv")},
        headers=auth(KEYS[0]),
    )
    assert response.status_code == 413
    assert "CHURN_MAX_UPLOAD_MB" in response.json()["message"]


def test_chunked_bodies_must_declare_their_length(guarded: LiveService) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"CreditScore": 600'

    response = httpx.post(
        guarded.url + "/v1/customer",
        content=chunks(),
        headers={**auth(KEYS[0]), "content-type": "application/json"},
    )
    assert response.status_code == 411


def test_too_many_rows_is_a_413(guarded: LiveService) -> None:
    rows = "\n".join(bank_row(i, i) for i in range(1, 61))
    for route in ("/v2/predict-file", "/v1/customerbatch"):
        response = httpx.post(
            guarded.url + route,
            files={"file": ("many.csv", f"{BANK_COLUMNS}\n{rows}\n".encode(), "text/csv")},
            headers=auth(KEYS[0]),
        )
        assert response.status_code == 413
        assert "CHURN_MAX_ROWS" in response.json()["message"]


def test_request_ids_and_a_log_without_customer_data(guarded: LiveService) -> None:
    customer = {**EXAMPLE_CUSTOMER, "Balance": 98765.4321, "CustomerId": "SECRET-ID-991"}
    response = httpx.post(
        guarded.url + "/v1/customer",
        json=customer,
        headers={**auth(KEYS[0]), "X-Request-ID": "trace-me-42"},
    )
    assert response.headers["x-request-id"] == "trace-me-42"
    generated = httpx.get(guarded.url + "/v2/model", headers=auth(KEYS[0]))
    assert len(generated.headers["x-request-id"]) == 16
    # The access log is written in batches, within half a second (churn.serving.logs).
    wait_until(
        lambda: "request_id=trace-me-42" in guarded.log.read_text(),
        "an access log line for the request",
    )
    log = guarded.log.read_text()
    line = next(line for line in log.splitlines() if "request_id=trace-me-42" in line)
    assert "route=/v1/customer status=200 latency_ms=" in line
    for secret in ("SECRET-ID-991", "98765.4321", *KEYS):
        assert secret not in log


def test_missing_or_altered_model_stops_the_service(bundled_store: Path, tmp_path: Path) -> None:
    home = tmp_path / "altered"
    shutil.copytree(bundled_store, home)
    (stored,) = (home / "models" / "churn_model").glob("*/booster.ubj")
    stored.write_bytes(stored.read_bytes() + b"!")
    empty = tmp_path / "empty"
    (empty / "models").mkdir(parents=True)
    for store, message in (
        (home, "Refusing to load"),
        (empty, "is not in the BentoML model store"),
    ):
        log = tmp_path / f"{store.name}.log"
        url, process = start_service(store, log)
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            stop(process)
            raise
        assert code != 0
        assert message in log.read_text()
        assert not answers(url + "/livez")


@pytest.mark.parametrize("blank", [",", " "])
def test_keys_that_name_no_key_stop_the_service(
    bundled_store: Path, tmp_path: Path, blank: str
) -> None:
    """Set, but no key in it: refused, rather than a service open to anyone without a word."""
    log = tmp_path / "blank-keys.log"
    url, process = start_service(bundled_store, log, {"CHURN_API_KEYS": blank})
    try:
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        stop(process)
        raise
    assert code != 0
    assert "CHURN_API_KEYS is set but names no key" in log.read_text()
    assert not answers(url + "/livez")


def test_the_last_access_lines_are_written_when_the_service_stops(
    bundled_store: Path, tmp_path: Path
) -> None:
    log = tmp_path / "stopping.log"
    # Longer than the test: the line can only reach the log when the worker stops.
    url, process = start_service(bundled_store, log, {"CHURN_LOG_FLUSH_MS": "600000"})
    try:
        wait_for(url + "/readyz", process)
        response = httpx.post(
            url + "/v1/customer", json=EXAMPLE_CUSTOMER, headers={"X-Request-ID": "last-one"}
        )
        assert response.status_code == 200
        assert "request_id=last-one" not in log.read_text()
    finally:
        stop(process)
    assert process.returncode is not None
    assert "request_id=last-one method=POST route=/v1/customer status=200" in log.read_text()


@pytest.mark.parametrize(
    ("method", "route", "allowed"),
    [
        ("GET", "/v2/predict", "POST"),  # a BentoML API
        ("DELETE", "/v1/customerbatch", "POST"),  # a route of the mounted FastAPI app
        ("POST", "/livez", "GET"),  # a BentoML probe
    ],
)
def test_a_method_a_route_does_not_take_is_a_405_in_our_shape(
    live_service: LiveService, method: str, route: str, allowed: str
) -> None:
    response = httpx.request(method, live_service.url + route)
    assert response.status_code == 405
    assert allowed in response.headers["allow"]
    assert response.json() == {
        "error": "method_not_allowed",
        "message": f"{route} does not take {method}; it takes {response.headers['allow']}.",
    }


@pytest.mark.parametrize(
    ("method", "route"), [("POST", "/v3/predict"), ("GET", "/static_content/missing.js")]
)
def test_an_unknown_route_is_a_404_in_our_shape(
    live_service: LiveService, method: str, route: str
) -> None:
    response = httpx.request(method, live_service.url + route)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert f"There is no route {route}." in response.json()["message"]
    assert len(response.headers["x-request-id"]) == 16


def test_a_path_cannot_forge_an_access_log_line(live_service: LiveService) -> None:
    forged = "2026-01-01 00:00:00,000 [INFO] [churn.access] request_id=forged"
    response = httpx.get(
        live_service.url + "/x%0A" + forged.replace(" ", "%20"),
        headers={"X-Request-ID": "forging-attempt"},
    )
    assert response.status_code == 404
    wait_until(
        lambda: "request_id=forging-attempt" in live_service.log.read_text(),
        "an access log line for the request",
    )
    lines = live_service.log.read_text().splitlines()
    (line,) = [line for line in lines if "request_id=forging-attempt" in line]
    assert "route=/x%0A2026-01-01%2000:00:00" in line
    assert not any(line.startswith(forged) for line in lines)


def test_bentomls_client_sends_its_token_as_the_key(guarded: LiveService) -> None:
    with bentoml.SyncHTTPClient(guarded.url, token=KEYS[1]) as client:
        [answer] = client.predict(customers=[EXAMPLE_CUSTOMER])
    assert answer["prediction"] in {"churn", "not churn"}
    with (
        bentoml.SyncHTTPClient(guarded.url) as client,
        pytest.raises(bentoml.exceptions.BentoMLException, match="API key") as refused,
    ):
        client.predict(customers=[EXAMPLE_CUSTOMER])
    assert refused.value.error_code == 401
