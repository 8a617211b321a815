"""Repeated slashes in a path, through real HTTP, with the fast path on and off.

The old notebook sets `model_root_url` to the service's root URL with its trailing `/`
and appends `"/v1/customer"`, so it sends `POST //v1/customer`; the old Flask app
answered it. The guard merges repeated slashes (churn.serving.edge.merged_slashes), and
nothing else: what it leaves as sent is checked here too.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.factories import BANK_COLUMNS, EXAMPLE_CUSTOMER, bank_row, make_customer

# Headers that differ between any two answers (a file answer has its own etag and time).
VARYING = {"date", "x-request-id", "connection", "etag", "last-modified"}
BATCH = "\n".join([BANK_COLUMNS, bank_row(1, 15634602), bank_row(2, 15647311, Age=30)]) + "\n"
# (method, path, what requests sends): every kind of route the service has.
CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/customer", {"json": EXAMPLE_CUSTOMER}),
    ("POST", "/v1/customer", {"json": make_customer(Age="old")}),  # its 422, from the route
    ("POST", "/v1/customerbatch", {"upload": BATCH}),
    ("POST", "/v2/predict", {"json": {"customers": [make_customer(CustomerId="A-1")]}}),
    ("POST", "/v2/predict", {"data": b"{}", "headers": {"Content-Type": "text/plain"}}),  # 415
    ("POST", "/v2/predict-file", {"upload": BATCH}),
    ("POST", "/v2/explain", {"json": {"customer": EXAMPLE_CUSTOMER}}),
    ("GET", "/v2/model", {}),
    ("GET", "/docs.json", {}),
    ("GET", "/", {}),
    ("GET", "/livez", {}),
    ("GET", "/nowhere", {}),  # its 404 names the path as merged
]


@pytest.fixture
def root_url(either_url: str) -> str:
    """The service's root URL as the notebook writes it, with its trailing slash."""
    return either_url + "/"


def send(method: str, url: str, what: dict[str, Any], tmp_path: Path) -> requests.Response:
    """The request as the notebook's `requests` calls make it: uploads from an open file."""
    what = dict(what)
    upload = what.pop("upload", None)
    if upload is None:
        return requests.request(method, url, timeout=60, **what)
    path = tmp_path / "customers.csv"
    path.write_text(upload)
    with path.open("rb") as handle:
        return requests.request(method, url, files={"file": handle}, timeout=60, **what)


def answer(response: requests.Response) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in VARYING}
    return {"status": response.status_code, "headers": headers, "body": response.content}


def test_the_old_notebooks_own_calls_are_answered(root_url: str, tmp_path: Path) -> None:
    model_root_url = root_url
    customer = requests.post(model_root_url + "/v1/customer", json=EXAMPLE_CUSTOMER)
    assert urllib.parse.urlsplit(customer.url).path == "//v1/customer"  # sent as written
    assert customer.status_code == 200
    assert customer.content == b'{"Prediction":"churn"}\n'
    path = tmp_path / "customers.csv"
    path.write_text(BATCH)
    with path.open("rb") as handle:
        batch = requests.post(model_root_url + "/v1/customerbatch", files={"file": handle})
    assert batch.status_code == 200
    assert set(batch.json()) == {"15634602", "15647311"}


@pytest.mark.parametrize(("method", "path", "what"), CALLS, ids=[f"{m} {p}" for m, p, _ in CALLS])
@pytest.mark.parametrize("spelling", ["notebook", "every slash doubled"])
def test_repeated_slashes_are_answered_as_the_merged_path(
    root_url: str, tmp_path: Path, method: str, path: str, what: dict[str, Any], spelling: str
) -> None:
    repeated = "/" + path if spelling == "notebook" else path.replace("/", "//")
    expected = answer(send(method, root_url + path.removeprefix("/"), what, tmp_path))
    got = answer(send(method, root_url.removesuffix("/") + repeated, what, tmp_path))
    assert got == expected
    assert got["status"] < 500
    if path == "/nowhere":
        assert json.loads(got["body"])["message"].startswith("There is no route /nowhere.")


@pytest.mark.parametrize(
    ("target", "status", "why"),
    [
        ("/v2/./predict", 404, "a dot segment is not resolved"),
        ("/v2/x/../predict", 404, "nor is a parent segment"),
        ("/v2%2F%2Fpredict", 404, "an encoded slash is data: not merged"),
        ("/V2/predict", 404, "paths are case-sensitive"),
        ("/v2/predict/", 307, "a trailing slash stays: the router redirects it, as before"),
        ("//v2/predict/", 307, "merged, then redirected as /v2/predict/ is"),
    ],
)
def test_what_is_not_normalised(root_url: str, target: str, status: int, why: str) -> None:
    # http.client sends the target as written; requests and httpx resolve dot segments.
    host = urllib.parse.urlsplit(root_url)
    connection = http.client.HTTPConnection(host.hostname or "", host.port, timeout=60)
    try:
        body = json.dumps({"customers": [EXAMPLE_CUSTOMER]})
        connection.request("POST", target, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()
    assert response.status == status, why
    if status == 307:
        assert urllib.parse.urlsplit(response.headers["location"]).path == "/v2/predict"
    else:
        assert json.loads(content)["error"] == "not_found"
