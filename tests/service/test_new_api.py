"""The /v2 API, health routes and OpenAPI page, through real HTTP."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import httpx
import pytest

from tests.conftest import LiveService
from tests.factories import BANK_COLUMNS, EXAMPLE_CUSTOMER, bank_row, make_customer


@pytest.fixture(scope="module")
def model(live_service: LiveService) -> dict[str, Any]:
    response = httpx.get(f"{live_service.url}/v2/model")
    assert response.status_code == 200
    info: dict[str, Any] = response.json()
    return info


def test_model_info_publishes_the_schema(model: dict[str, Any]) -> None:
    assert model["model_version"] == "1.0"
    assert model["model_name"] == "churn_model"
    schema = {spec["name"]: spec for spec in model["feature_schema"]}
    assert schema["Geography"]["categories"] == ["France", "Germany", "Spain"]
    assert (schema["Age"]["minimum"], schema["Age"]["maximum"]) == (18, 100)
    assert {"roc_auc", "pr_auc", "precision", "recall", "f1", "brier"} <= set(model["metrics"])


def test_predict_single_and_many(live_service: LiveService, model: dict[str, Any]) -> None:
    customers = [
        make_customer(CustomerId="A-1"),
        make_customer(CustomerId=15634602, Geography="Germany", Age=45),
        make_customer(Age=22, NumOfProducts=2, IsActiveMember=1),
    ]
    response = httpx.post(f"{live_service.url}/v2/predict", json={"customers": customers})
    assert response.status_code == 200
    results = response.json()
    assert [r["CustomerId"] for r in results] == ["A-1", "15634602", None]
    threshold = float(model["threshold"])
    for result in results:
        p = result["churn_probability"]
        assert 0 <= p <= 1
        assert result["prediction"] == ("churn" if p >= threshold else "not churn")
        expected_band = (
            "high" if p >= max(0.5, threshold) else "medium" if p >= threshold else "low"
        )
        assert result["risk_band"] == expected_band
        assert result["model_version"] == "1.0"


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v2/predict", {"customers": [EXAMPLE_CUSTOMER]}),
        ("/v2/explain", {"customer": EXAMPLE_CUSTOMER}),
    ],
)
def test_api_answers_come_whole_with_their_length(
    live_service: LiveService, route: str, body: dict[str, Any]
) -> None:
    response = httpx.post(f"{live_service.url}{route}", json=body)
    assert response.status_code == 200
    assert "transfer-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]


def test_predict_validation_names_the_field(live_service: LiveService) -> None:
    body = {"customers": [EXAMPLE_CUSTOMER, make_customer(Geography="Atlantis")]}
    response = httpx.post(f"{live_service.url}/v2/predict", json=body)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_input"
    assert body["message"] == "The request does not fit the schema: check customers.1.Geography."
    (problem,) = body["problems"]
    assert problem["field"] == "customers.1.Geography"
    assert problem["allowed"] == "one of France, Germany, Spain"


def test_json_routes_refuse_other_content_types(live_service: LiveService) -> None:
    response = httpx.post(
        f"{live_service.url}/v2/predict",
        content=b"customers=1",
        headers={"content-type": "multipart/form-data"},
    )
    assert response.status_code == 415
    assert "JSON" in response.json()["message"]


def test_openapi_documents_the_error_shape(live_service: LiveService) -> None:
    spec = httpx.get(f"{live_service.url}/docs.json").json()
    responses = spec["paths"]["/v2/predict"]["post"]["responses"]
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
    assert responses["400"]["content"] == responses["422"]["content"]
    assert "ErrorBody" in spec["components"]["schemas"]


def test_explain_folds_geography_and_adds_up(live_service: LiveService) -> None:
    response = httpx.post(
        f"{live_service.url}/v2/explain", json={"customer": make_customer(Geography="Germany")}
    )
    assert response.status_code == 200
    explanation = response.json()
    factors = explanation["factors"]
    assert sorted(f["feature"] for f in factors) == sorted(EXAMPLE_CUSTOMER)
    geography = next(f for f in factors if f["feature"] == "Geography")
    assert geography["value"] == "Germany"
    margin = explanation["base_value"] + sum(f["contribution"] for f in factors)
    probability = explanation["prediction"]["churn_probability"]
    assert 1 / (1 + math.exp(-margin)) == pytest.approx(probability, abs=1e-4)
    assert all(f["direction"] == ("up" if f["contribution"] > 0 else "down") for f in factors)


def mixed_file() -> bytes:
    lines = [
        BANK_COLUMNS,
        bank_row(1, '=HYPERLINK("http://x")'),
        bank_row(2, 2, Age="abc"),
        "3,3,Short,600",
        bank_row(4, 4, Geography="Germany"),
        bank_row(5, 4),
    ]
    return ("\n".join(lines) + "\n").encode()


def test_predict_file_accounts_for_every_row(live_service: LiveService) -> None:
    response = httpx.post(
        f"{live_service.url}/v2/predict-file",
        files={"file": ("mixed.csv", mixed_file(), "text/csv")},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(r["row"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [r["status"] for r in rows] == ["scored", "rejected", "rejected", "scored", "scored"]
    assert rows[0]["CustomerId"].startswith("'=")
    assert "Age: is not a number (allowed: an integer from 18 to 100)" in rows[1]["errors"]
    assert "fields" in rows[2]["errors"]
    assert (rows[1]["CustomerId"], rows[2]["CustomerId"]) == ("2", "")
    assert response.headers["x-rows-in"] == "5"
    assert response.headers["x-rows-scored"] == "3"
    assert response.headers["x-rows-rejected"] == "2"


def test_predict_file_json_on_request(live_service: LiveService) -> None:
    response = httpx.post(
        f"{live_service.url}/v2/predict-file",
        files={"file": ("mixed.csv", mixed_file(), "text/csv")},
        data={"format": "json"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["summary"]["rows_in"] == 5
    assert body["summary"]["rows_scored"] + body["summary"]["rows_rejected"] == 5
    assert body["summary"]["duplicate_ids"] == 1
    assert [p["row"] for p in body["predictions"]] == [1, 4, 5]
    assert [r["row"] for r in body["rejected"]] == [2, 3]


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"", 400), ((BANK_COLUMNS + "\n").encode(), 422), (b"\x00\x01\x02binary", 400)],
)
def test_predict_file_unreadable(live_service: LiveService, content: bytes, status: int) -> None:
    response = httpx.post(
        f"{live_service.url}/v2/predict-file", files={"file": ("x.csv", content, "text/csv")}
    )
    assert response.status_code == status
    assert response.json()["message"]


@pytest.mark.parametrize(
    ("route", "status"), [("/livez", 200), ("/readyz", 200), ("/metrics", 200)]
)
def test_bentoml_routes_stay(live_service: LiveService, route: str, status: int) -> None:
    assert httpx.get(live_service.url + route).status_code == status


def test_openapi_documents_the_new_api(live_service: LiveService) -> None:
    spec = httpx.get(f"{live_service.url}/docs.json").json()
    assert {"/v2/predict", "/v2/predict-file", "/v2/explain", "/v2/model"} <= set(spec["paths"])
    answer = spec["paths"]["/v2/predict"]["post"]["responses"]["200"]["content"]
    schema = answer["application/json"]["schema"]
    assert schema["type"] == "array"
    assert schema["items"] == {"$ref": "#/components/schemas/Prediction"}
    assert "churn_probability" in spec["components"]["schemas"]["Prediction"]["properties"]
