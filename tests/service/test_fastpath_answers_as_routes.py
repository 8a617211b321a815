"""The fast path (churn.serving.fastpath) against the routes it stands in front of, over HTTP.

The session's live service runs with the fast path on, as shipped; a second service
(`routes_only`, tests/conftest.py) runs with CHURN_FAST_PATH=false, where every
request goes through BentoML's and FastAPI's routes. Both must answer every request
alike, byte for byte. tests/service/test_batching_over_http.py checks batching, both ways.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import LiveService
from tests.factories import EXAMPLE_CUSTOMER, make_customer

JSON = {"content-type": "application/json"}
# Headers that differ between any two answers, or that the connection layer sets.
VARYING = {"date", "x-request-id", "connection"}
MANY = [make_customer(CustomerId=f"C-{n}", Age=18 + n % 80) for n in range(1200)]

REQUESTS: list[tuple[str, dict[str, str], bytes]] = [
    ("/v1/customer", JSON, json.dumps(EXAMPLE_CUSTOMER).encode()),
    ("/v1/customer", JSON, json.dumps(make_customer(Age=25, IsActiveMember=1)).encode()),
    # The old app's clients did not all send a JSON content type.
    ("/v1/customer", {"content-type": "text/plain"}, json.dumps(EXAMPLE_CUSTOMER).encode()),
    ("/v1/customer", JSON, b""),
    ("/v1/customer", JSON, b"{}"),
    ("/v1/customer", JSON, b"not json"),
    ("/v1/customer", JSON, b"[1, 2]"),
    ("/v1/customer", JSON, json.dumps(make_customer(Geography="Atlantis")).encode()),
    ("/v1/customer", JSON, json.dumps(make_customer(Age="old")).encode()),
    ("/v2/predict", JSON, json.dumps({"customers": [make_customer(CustomerId=7)]}).encode()),
    # More customers than one batch holds (CHURN_MAX_BATCH_SIZE, 512): split and joined.
    ("/v2/predict", JSON, json.dumps({"customers": MANY}).encode()),
    ("/v2/predict", JSON, b'{"customers": []}'),
    ("/v2/predict", JSON, b""),
    ("/v2/predict", JSON, b"{}"),
    ("/v2/predict", JSON, b"not json"),
    ("/v2/predict", JSON, b'{"customers": null}'),
    ("/v2/predict", JSON, json.dumps({"customers": [make_customer(Balance=-1)]}).encode()),
    ("/v2/predict", JSON, json.dumps({"customers": [EXAMPLE_CUSTOMER], "extra": 1}).encode()),
]


def answer(url: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    response = httpx.post(url + path, headers=headers, content=body, timeout=60)
    return {
        "status": response.status_code,
        "headers": {k: v for k, v in response.headers.items() if k not in VARYING},
        "body": response.content,
    }


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    REQUESTS,
    ids=[f"{path} {body[:40]!r}" for path, _, body in REQUESTS],
)
def test_the_fast_path_answers_as_the_routes_do(
    live_service: LiveService, routes_only: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    fast = answer(live_service.url, path, headers, body)
    assert fast == answer(routes_only, path, headers, body)
    assert fast["status"] < 500
