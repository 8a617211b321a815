"""Every route that labels customers, against one independent oracle.

The oracle (tests/conftest.py, `Oracle`) is the bundled joblib pipeline, loaded after
its checksum matched, asked for `predict_proba` directly, labelled at the threshold in
its metadata file and banded by boundaries restated in the test. It shares no code
with the service's scoring (churn.scoring),
so a label that is wrong on one route is caught on that route, instead of agreeing
with another route that computes it with the same code.

The customers include a pair one cent apart whose probabilities straddle the
threshold (0.3197 and 0.3203 for the bundled model), so that a label computed at a
threshold shifted either way by more than that is caught too. Each route is checked
with the fast path on (as shipped) and off.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import HIGH_RISK_FROM, ROOT, Oracle
from tests.factories import EXAMPLE_CUSTOMER

# A route rounds probabilities to 6 decimals (up to 5e-7 off) and may sum the trees in
# float32 in another order than XGBoost (measured up to 2.3e-7 apart): 1e-6 holds both.
PROBABILITY_TOLERANCE = 1e-6
# Base value and contributions are rounded to 6 decimals each: 10 numbers, up to 5e-6,
# plus float32 summation.
LOGIT_TOLERANCE = 1e-5
# The threshold pair must be this close to the threshold on both sides: closer than any
# shift of the threshold worth catching (0.001 is a tenth of a percentage point).
STRADDLE_MARGIN = 1e-3
# ...but not so close that float32 rounding, which may differ between XGBoost and the
# service's own tree walk, could legitimately flip the label (see the tolerance above).
STRADDLE_FLOOR = 1e-5
CENTS_FEATURES = {"Balance": 250_000_00, "EstimatedSalary": 200_000_00}
FEATURE_ORDER = list(EXAMPLE_CUSTOMER)
SEED = 17
# Positions in `expected`: the README's example, the customers just below and at the
# threshold, the pool's nearest above (NEAR) and below (NEAR + 20) it, and its nearest
# above (HIGH_EDGE) and below (HIGH_EDGE + 1) the high band's boundary.
EXAMPLE, BELOW, AT, NEAR, HIGH_EDGE = 0, 1, 2, 3, 43
FOCUS = [EXAMPLE, BELOW, AT, NEAR, NEAR + 20, HIGH_EDGE, HIGH_EDGE + 1]


def random_customers(count: int, seed: int) -> list[dict[str, Any]]:
    """Plausible customers over the schema's ranges, the same ones every run."""
    rng = np.random.default_rng(seed)
    columns = {
        "CreditScore": rng.integers(350, 851, count),
        "Geography": rng.choice(["France", "Germany", "Spain"], count),
        "Age": rng.integers(18, 93, count),
        "Tenure": rng.integers(0, 11, count),
        "Balance": rng.integers(0, CENTS_FEATURES["Balance"], count) / 100,
        "NumOfProducts": rng.integers(1, 5, count),
        "HasCrCard": rng.integers(0, 2, count),
        "IsActiveMember": rng.integers(0, 2, count),
        "EstimatedSalary": rng.integers(0, CENTS_FEATURES["EstimatedSalary"], count) / 100,
    }
    return [{name: values[i].item() for name, values in columns.items()} for i in range(count)]


@dataclass(frozen=True)
class Interval:
    """Two values of one feature of `base`, in cents, on opposite sides of the threshold."""

    base: dict[str, Any]
    feature: str
    low: int
    high: int

    def customer(self, cents: int) -> dict[str, Any]:
        return {**self.base, self.feature: cents / 100}


def first_crossings(
    oracle: Oracle, grids: list[tuple[Interval, np.ndarray]], every: bool = False
) -> list[Interval]:
    """Where the label changes between adjacent points of each grid, all scored in one
    call: the first such place in each grid, or with `every` all of them."""
    churn = oracle.probabilities([i.customer(int(c)) for i, grid in grids for c in grid])
    churn = churn >= oracle.threshold
    found, start = [], 0
    for interval, grid in grids:
        sides = churn[start : start + len(grid)]
        start += len(grid)
        changes = np.flatnonzero(sides[1:] != sides[:-1])
        found += [
            Interval(interval.base, interval.feature, int(grid[k]), int(grid[k + 1]))
            for k in (changes if every else changes[:1])
        ]
    return found


def straddling_pair(oracle: Oracle, pool: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """(just below, at) the threshold: two customers one cent apart in Balance or
    EstimatedSalary, found by bisecting between a churn and a not-churn value of that
    feature with the oracle; of all such pairs, the one closest to the threshold."""
    distance = np.abs(oracle.probabilities(pool) - oracle.threshold)
    near = [pool[i] for i in np.argsort(distance)[:40]]
    # A coarse scan of each feature, for each customer near the threshold, finds where
    # the label changes; each round then narrows every such interval 64-fold, to a cent.
    found = first_crossings(
        oracle,
        [
            (Interval(base, feature, 0, top), np.linspace(0, top, 401).round().astype(int))
            for base in near
            for feature, top in CENTS_FEATURES.items()
        ],
        every=True,
    )
    while any(i.high - i.low > 1 for i in found):
        found = first_crossings(
            oracle, [(i, np.unique(np.linspace(i.low, i.high, 65).round())) for i in found]
        )
    pairs = [(i.customer(i.low), i.customer(i.high)) for i in found]
    scores = oracle.probabilities([c for pair in pairs for c in pair]).reshape(-1, 2)
    best: tuple[float, tuple[dict[str, Any], ...]] | None = None
    for pair, (low, high) in zip(pairs, scores, strict=True):
        # Sorted by probability: (below, at).
        ordered = pair if low < high else pair[::-1]
        gaps = (oracle.threshold - min(low, high), max(low, high) - oracle.threshold)
        if min(gaps) >= STRADDLE_FLOOR and (best is None or max(gaps) < best[0]):
            best = (max(gaps), ordered)
    assert best is not None, "no pair of customers straddles the threshold"
    return best[1]


@dataclass(frozen=True)
class Expected:
    customers: list[dict[str, Any]]  # each with its CustomerId
    probabilities: list[float]

    def features(self, index: int) -> dict[str, Any]:
        return {k: v for k, v in self.customers[index].items() if k != "CustomerId"}


def nearest(probabilities: np.ndarray, boundary: float, count: int) -> list[int]:
    """The `count` nearest to `boundary` at or above it, then the `count` nearest below."""
    above = np.argsort(np.where(probabilities >= boundary, probabilities, 2))[:count]
    below = np.argsort(np.where(probabilities < boundary, -probabilities, 2))[:count]
    return [*above, *below]


@pytest.fixture(scope="module")
def expected(oracle: Oracle) -> Expected:
    """The README's example, the threshold pair, the pool's 20 nearest the threshold on
    each side and nearest the high band's boundary on each side, and 150 more across
    every band, each with the oracle's probability."""
    pool = random_customers(4000, SEED)
    below, at = straddling_pair(oracle, pool)
    probabilities = oracle.probabilities(pool)
    chosen = [
        *nearest(probabilities, oracle.threshold, 20),
        *nearest(probabilities, HIGH_RISK_FROM, 1),
        *range(150),
    ]
    customers = [EXAMPLE_CUSTOMER, below, at, *(pool[i] for i in chosen)]
    with_ids = [{"CustomerId": 15600000 + n, **c} for n, c in enumerate(customers)]
    return Expected(with_ids, oracle.probabilities(customers).tolist())


def assert_agrees(
    oracle: Oracle,
    expected: Expected,
    results: list[dict[str, Any]],
    indices: list[int] | None = None,
) -> None:
    """Each result (probability, label, band) is the oracle's for its customer."""
    indices = list(range(len(expected.customers))) if indices is None else indices
    assert len(results) == len(indices)
    for n, result in zip(indices, results, strict=True):
        p = expected.probabilities[n]
        assert float(result["churn_probability"]) == pytest.approx(p, abs=PROBABILITY_TOLERANCE), (
            f"customer {n}"
        )
        assert (result["prediction"], result["risk_band"]) == (
            oracle.label(p),
            oracle.band(p),
        ), f"customer {n}, probability {p}"


def labels(oracle: Oracle, expected: Expected) -> list[str]:
    return [oracle.label(p) for p in expected.probabilities]


def upload(url: str, expected: Expected, **form: str) -> httpx.Response:
    """The customers as a CSV file in the public layout's columns, sent to `url`."""
    header = ["CustomerId", *FEATURE_ORDER]
    lines = [",".join(header)]
    lines += [",".join(str(c[name]) for name in header) for c in expected.customers]
    content = ("\n".join(lines) + "\n").encode()
    response = httpx.post(
        url, files={"file": ("customers.csv", content, "text/csv")}, data=form, timeout=60
    )
    assert response.status_code == 200, response.text
    return response


def test_the_oracle_pins_the_readme_example(oracle: Oracle) -> None:
    # The README's own example request and the answer it shows, read from the README.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"/v1/customer .*?-d '(\{.*?\})'\s*\n# (\{.*?\})", readme, re.S)
    assert found, "the README's /v1/customer example"
    customer, answer = (json.loads(part) for part in found.groups())
    assert customer == EXAMPLE_CUSTOMER
    probability = oracle.probability(customer)
    assert answer == {"Prediction": oracle.label(probability)} == {"Prediction": "churn"}
    # The bundled model's output for it, pinned: a different model changes it.
    assert probability == pytest.approx(0.415813, abs=PROBABILITY_TOLERANCE)
    assert oracle.band(probability) == "medium"


def test_the_customers_cover_the_threshold_and_every_band(
    oracle: Oracle, expected: Expected
) -> None:
    below, at = expected.probabilities[BELOW], expected.probabilities[AT]
    assert oracle.threshold - STRADDLE_MARGIN < below < oracle.threshold <= at
    assert at < oracle.threshold + STRADDLE_MARGIN
    # One cent apart in one feature, and nothing else.
    one, other = expected.features(BELOW), expected.features(AT)
    (feature,) = [name for name in one if one[name] != other[name]]
    assert abs(one[feature] - other[feature]) == pytest.approx(0.01)
    high, medium = expected.probabilities[HIGH_EDGE], expected.probabilities[HIGH_EDGE + 1]
    assert medium < HIGH_RISK_FROM <= high < HIGH_RISK_FROM + 0.01
    assert {oracle.band(p) for p in expected.probabilities} == {"low", "medium", "high"}


def test_the_published_threshold_and_bands_are_the_oracles(oracle: Oracle, either_url: str) -> None:
    model = httpx.get(f"{either_url}/v2/model", timeout=30).json()
    assert (model["model_version"], model["threshold"]) == (oracle.version, oracle.threshold)
    assert model["risk_bands"] == {"medium_from": oracle.threshold, "high_from": HIGH_RISK_FROM}


def test_v1_customer(oracle: Oracle, expected: Expected, either_url: str) -> None:
    with httpx.Client(base_url=either_url, timeout=30) as client:
        answers = [
            client.post("/v1/customer", json=expected.features(n)).json()["Prediction"]
            for n in range(len(expected.customers))
        ]
    assert answers == labels(oracle, expected)


def test_v1_customerbatch(oracle: Oracle, expected: Expected, either_url: str) -> None:
    answer = upload(f"{either_url}/v1/customerbatch", expected).json()
    assert len(answer) == len(expected.customers)
    assert [answer[str(c["CustomerId"])] for c in expected.customers] == [
        label.title() for label in labels(oracle, expected)
    ]


def test_v2_predict(oracle: Oracle, expected: Expected, either_url: str) -> None:
    # All customers in one request (more than 64: XGBoost scores them), and the example
    # and the threshold pair one at a time (the service's own tree walk scores them).
    with httpx.Client(base_url=either_url, timeout=60) as client:
        whole = client.post("/v2/predict", json={"customers": expected.customers}).json()
        single = [
            client.post("/v2/predict", json={"customers": [expected.customers[n]]}).json()[0]
            for n in FOCUS
        ]
    ids = [str(c["CustomerId"]) for c in expected.customers]
    assert [r["CustomerId"] for r in whole] == ids
    assert [r["CustomerId"] for r in single] == [ids[n] for n in FOCUS]
    assert {r["model_version"] for r in whole + single} == {oracle.version}
    assert_agrees(oracle, expected, whole)
    assert_agrees(oracle, expected, single, FOCUS)


def test_v2_predict_file_csv(oracle: Oracle, expected: Expected, either_url: str) -> None:
    response = upload(f"{either_url}/v2/predict-file", expected)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(int(r["row"]), r["status"]) for r in rows] == [
        (n, "scored") for n in range(1, len(expected.customers) + 1)
    ]
    assert_agrees(oracle, expected, rows)
    churners = sum(label == "churn" for label in labels(oracle, expected))
    assert response.headers["x-predicted-churn"] == str(churners)


def test_v2_predict_file_json(oracle: Oracle, expected: Expected, either_url: str) -> None:
    body = upload(f"{either_url}/v2/predict-file", expected, format="json").json()
    rows = body["predictions"]
    assert [r["row"] for r in rows] == list(range(1, len(expected.customers) + 1))
    assert_agrees(oracle, expected, rows)
    churners = sum(label == "churn" for label in labels(oracle, expected))
    assert body["summary"]["predicted_churn"] == churners


def test_v2_explain(oracle: Oracle, expected: Expected, either_url: str) -> None:
    with httpx.Client(base_url=either_url, timeout=60) as client:
        answers = [
            client.post("/v2/explain", json={"customer": expected.customers[n]}).json()
            for n in FOCUS
        ]
    assert_agrees(oracle, expected, [a["prediction"] for a in answers], FOCUS)
    for n, answer in zip(FOCUS, answers, strict=True):
        p = expected.probabilities[n]
        # TreeSHAP: the base value and the contributions add up to the log-odds.
        margin = answer["base_value"] + sum(f["contribution"] for f in answer["factors"])
        assert margin == pytest.approx(math.log(p / (1 - p)), abs=LOGIT_TOLERANCE), n
