"""A model imported from elsewhere, served beside the bundled one: CHURN_MODEL_TAG picks
it, /v2/model says where it came from, and every route labels as its predict() did.

The imported model here is the bundled model's booster recorded as an import
(tests/conftest.py, `imported_metadata`): threshold 0.5, label rule ">". The oracle is
the bundled joblib pipeline's own `predict()`, which XGBoost labels 1 strictly above
0.5, and `predict_proba`.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import IMPORTED_FILE, IMPORTED_SHA256, ImportedService, Oracle
from tests.service.test_oracle import random_customers

PROBABILITY_TOLERANCE = 1e-6


def test_v2_model_says_where_the_model_came_from(imported_service: ImportedService) -> None:
    info = httpx.get(f"{imported_service.url}/v2/model", timeout=30).json()
    assert info["model_tag"] == imported_service.tag
    assert imported_service.tag.startswith("churn_model:1.0-import-abababab")
    assert info["origin"] == (
        f"imported from {IMPORTED_FILE} (scikit-learn 1.6.1, XGBoost 2.1.4); "
        "parity on 3,000 customers: 0 labels differ"
    )
    assert info["label_rule"] == ">"
    assert info["threshold"] == 0.5
    assert info["trained_at"] is None
    assert info["metrics"] == {}
    provenance = info["provenance"]
    assert provenance["source_sha256"] == IMPORTED_SHA256
    assert provenance["made_with"] == {"scikit-learn": "1.6.1", "xgboost": "2.1.4"}
    assert provenance["parity"]["labels_differ"] == 0
    # The fields every client has always read are all still there.
    for field in ("model_name", "model_version", "threshold_rule", "risk_bands", "features"):
        assert field in info


def _frame(customers: list[dict[str, Any]], oracle: Oracle) -> pd.DataFrame:
    return pd.DataFrame([{name: c[name] for name in oracle.features} for c in customers])


def test_every_route_labels_as_predict_did(
    imported_service: ImportedService, oracle: Oracle
) -> None:
    customers = random_customers(2000, seed=26)
    frame = _frame(customers, oracle)
    predicted = oracle.pipeline.predict(frame).tolist()
    probabilities = oracle.pipeline.predict_proba(frame)[:, 1]
    assert 0 < sum(predicted) < len(predicted)
    url = imported_service.url

    rows = io.StringIO()
    writer = csv.DictWriter(rows, fieldnames=["CustomerId", *oracle.features])
    writer.writeheader()
    writer.writerows({"CustomerId": 15_000_000 + i, **c} for i, c in enumerate(customers))
    batch = httpx.post(
        f"{url}/v1/customerbatch",
        files={"file": ("customers.csv", rows.getvalue().encode(), "text/csv")},
        timeout=60,
    )
    assert batch.status_code == 200, batch.text
    by_id = batch.json()  # the old contract: {CustomerId: "Churn" | "Not Churn"}
    labels = [by_id[str(15_000_000 + i)] for i in range(len(customers))]
    assert labels == ["Churn" if p else "Not Churn" for p in predicted]

    answer = httpx.post(f"{url}/v2/predict", json={"customers": customers}, timeout=60)
    assert answer.status_code == 200, answer.text
    scored = answer.json()
    assert [p["prediction"] == "churn" for p in scored] == [bool(p) for p in predicted]
    assert {p["model_version"] for p in scored} == {"1.0"}
    np.testing.assert_allclose(
        [p["churn_probability"] for p in scored], probabilities, atol=PROBABILITY_TOLERANCE
    )
    # Medium starts where the label flips: at 0.5 both bands meet, so there is none.
    assert {p["risk_band"] for p in scored} == {"low", "high"}

    for customer, label in list(zip(customers, predicted, strict=True))[:40]:
        one = httpx.post(f"{url}/v1/customer", json=customer, timeout=30)
        assert one.status_code == 200, one.text
        assert one.json() == {"Prediction": "churn" if label else "not churn"}


@pytest.mark.parametrize("route", ["/v2/model/card.md", "/v2/model/card"])
def test_the_card_of_an_imported_model_says_what_it_lacks(
    imported_service: ImportedService, route: str
) -> None:
    card = httpx.get(f"{imported_service.url}{route}", timeout=30)
    assert card.status_code == 200
    text = card.text
    assert f"imported from {IMPORTED_FILE}" in text
    assert "No performance figures were recorded" in text
    assert "above 0.5 (strictly)" in text
    assert "has no reference profile" in text
