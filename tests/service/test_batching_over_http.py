"""Batching of /v2/predict (churn.serving.batching) over HTTP, read from the service's /metrics.

Both ways a request can take: the fast path (the session's live service) and BentoML's
API route (`routes_only`, CHURN_FAST_PATH=false); one worker each. What is checked is
counted, never timed: how many requests waited in the queue at all (a wait of exactly
0 means scored at once), and how many scoring calls there were.
"""

from __future__ import annotations

import asyncio
import json
import re

import httpx

from tests.factories import make_customer

WAITS = "churn_predict_queue_wait_seconds"
SIZES = "churn_predict_batch_size"
BULK = 3_000  # customers: more than a batch gathers (CHURN_MAX_BATCH_SIZE, 512)


def histogram(url: str, name: str) -> dict[str, float]:
    """A histogram on /metrics: {"count": n, "sum": s, "le=0.0": n at or under 0, ...}."""
    metrics = httpx.get(f"{url}/metrics").text
    assert f"# TYPE {name} histogram" in metrics
    found = {
        key: float(value)
        for key, value in re.findall(rf"^{name}_(count|sum) (\S+)$", metrics, re.M)
    }
    for bound, value in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', metrics, re.M):
        found[f"le={bound}"] = float(value)
    return found


def grew(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0) for key in after}


def test_after_bulk_requests_a_lone_request_is_scored_at_once(either_url: str) -> None:
    bulk = json.dumps(
        {"customers": [make_customer(CustomerId=n, Age=18 + n % 70) for n in range(BULK)]}
    )
    waits, sizes = histogram(either_url, WAITS), histogram(either_url, SIZES)

    with httpx.Client(base_url=either_url, timeout=120) as client:
        for _ in range(3):
            answer = client.post(
                "/v2/predict", content=bulk, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 200
            assert len(answer.json()) == BULK
        for n in range(20):
            answer = client.post("/v2/predict", json={"customers": [make_customer(CustomerId=n)]})
            assert answer.status_code == 200
            assert answer.json()[0]["CustomerId"] == str(n)

    waits, sizes = (
        grew(waits, histogram(either_url, WAITS)),
        grew(sizes, histogram(either_url, SIZES)),
    )
    # Each request went through the queue once and none waited in it: a bulk request is
    # scored as sent, and a lone request after it finds the batcher idle.
    assert waits["count"] == waits["le=0.0"] == 23
    assert waits["sum"] == 0
    # One scoring call a request: the bulk requests were not cut into batches.
    assert sizes["count"] == 23
    assert sizes["sum"] == 3 * BULK + 20


def test_concurrent_single_customer_requests_are_batched(either_url: str) -> None:
    clients, rounds = 64, 5

    async def drive() -> list[int]:
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=either_url, limits=limits, timeout=60) as client:
            statuses = []
            for _ in range(rounds):
                answers = await asyncio.gather(
                    *(
                        client.post(
                            "/v2/predict", json={"customers": [make_customer(CustomerId=n)]}
                        )
                        for n in range(clients)
                    )
                )
                assert [a.json()[0]["CustomerId"] for a in answers] == [
                    str(n) for n in range(clients)
                ]
                statuses += [a.status_code for a in answers]
            return statuses

    waits, sizes = histogram(either_url, WAITS), histogram(either_url, SIZES)
    statuses = asyncio.run(drive())
    waits, sizes = (
        grew(waits, histogram(either_url, WAITS)),
        grew(sizes, histogram(either_url, SIZES)),
    )

    assert statuses == [200] * clients * rounds
    # Every customer scored exactly once, in fewer calls than customers ...
    assert sizes["sum"] == clients * rounds
    assert sizes["count"] < clients * rounds
    # ... because some requests waited in the queue for others: every request's wait is
    # recorded, and not all of them are 0.
    assert waits["count"] == clients * rounds
    assert waits["le=0.0"] < clients * rounds
    assert waits["sum"] > 0
