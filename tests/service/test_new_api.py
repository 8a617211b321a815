"""The /v2 API, health routes and OpenAPI page, through real HTTP."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import openapi_spec_validator
import pytest

from churn.record.schema import FEATURE_SPECS
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


def predict_file(
    live_service: LiveService,
    *,
    query: str = "",
    form: dict[str, str] | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{live_service.url}/v2/predict-file{query}",
        files={"file": ("mixed.csv", mixed_file(), "text/csv")},
        data=form,
        headers=headers,
    )


def answered_format(response: httpx.Response) -> str:
    """csv or json, from the answer's type, checked against its body."""
    assert response.status_code == 200, response.text
    assert response.headers["vary"] == "Accept"
    assert response.headers["x-model-version"] == "1.0"
    assert response.headers["x-predicted-churn"].isdigit()
    if response.headers["content-type"] == "text/csv; charset=utf-8":
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [int(row["row"]) for row in rows] == [1, 2, 3, 4, 5]
        answered = "csv"
    else:
        assert response.headers["content-type"] == "application/json"
        assert response.json()["summary"]["rows_in"] == 5
        answered = "json"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="churn-predictions.{answered}"'
    )
    return answered


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("*/*", "csv"),  # what curl, requests and httpx send
        ("", "csv"),
        ("application/json", "json"),
        ("text/csv", "csv"),
        ("APPLICATION/JSON; charset=utf-8", "json"),
        ("application/*", "json"),
        ("text/*", "csv"),
        ("application/json;q=0.5, text/csv", "csv"),
        ("text/csv;q=0.4, application/json;q=0.9", "json"),
        ("application/json, */*;q=0.1", "json"),
        ("application/json, */*", "json"),  # equal q: the more specific range wins
        ("text/csv;q=0, */*", "json"),  # q=0: not acceptable, whatever */* says
        (BROWSER, "csv"),
        ("not a media type", "csv"),  # nothing readable: as if none was sent
    ],
)
def test_predict_file_honours_accept(live_service: LiveService, accept: str, expected: str) -> None:
    response = predict_file(live_service, headers=[("Accept", accept)])
    assert answered_format(response) == expected


def test_predict_file_reads_every_accept_header(live_service: LiveService) -> None:
    headers = [("Accept", "text/html"), ("Accept", "application/json")]
    assert answered_format(predict_file(live_service, headers=headers)) == "json"


@pytest.mark.parametrize(
    "accept",
    ["text/html", "application/xml, text/html;q=0.9", "text/csv;q=0, application/json;q=0"],
)
def test_predict_file_answers_406_when_accept_admits_neither(
    live_service: LiveService, accept: str
) -> None:
    response = predict_file(live_service, headers=[("Accept", accept)])
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "not_acceptable"
    assert "text/csv or application/json" in body["message"]
    assert body["problems"] == [
        {"message": "admits neither", "field": "Accept", "allowed": "text/csv, application/json"}
    ]


@pytest.mark.parametrize(
    ("query", "form", "accept", "expected"),
    [
        ("?format=json", None, "*/*", "json"),
        ("?format=json", None, "text/csv", "json"),  # explicit beats Accept
        ("?format=json", None, "text/html", "json"),  # and then Accept cannot make a 406
        ("?format=csv", None, "application/json", "csv"),
        ("", {"format": "json"}, "text/csv", "json"),
        ("", {"format": "csv"}, "application/json", "csv"),
        ("?format=json", {"format": "json"}, "text/csv", "json"),
    ],
)
def test_predict_file_explicit_format_comes_first(
    live_service: LiveService, query: str, form: dict[str, str] | None, accept: str, expected: str
) -> None:
    response = predict_file(live_service, query=query, form=form, headers=[("Accept", accept)])
    assert answered_format(response) == expected


def test_predict_file_query_and_form_must_agree(live_service: LiveService) -> None:
    response = predict_file(live_service, query="?format=json", form={"format": "csv"})
    assert response.status_code == 422
    body = response.json()
    assert "format=json" in body["message"]
    assert "format=csv" in body["message"]
    assert [problem["field"] for problem in body["problems"]] == ["query.format", "format"]


@pytest.mark.parametrize(
    ("query", "form", "status", "field"),
    [
        ("?format=xml", None, 422, "query.format"),
        ("?format=", None, 422, "query.format"),
        ("", {"format": "xml"}, 422, "format"),
        ("?format=json&format=csv", None, 400, None),
    ],
)
def test_predict_file_refuses_formats_it_does_not_make(
    live_service: LiveService,
    query: str,
    form: dict[str, str] | None,
    status: int,
    field: str | None,
) -> None:
    response = predict_file(live_service, query=query, form=form)
    assert response.status_code == status
    body = response.json()
    assert "format" in body["message"]
    if field:
        assert body["problems"] == [
            {"message": "is not allowed", "field": field, "allowed": "csv, json"}
        ]


def test_openapi_document_validates_and_every_reference_resolves(
    live_service: LiveService,
) -> None:
    spec = httpx.get(f"{live_service.url}/docs.json").json()
    assert spec["openapi"].startswith("3.1")
    # Raises on an unresolvable $ref (the file route's pointed to #/$defs/ScoredRow).
    openapi_spec_validator.validate(spec)


def keywords(schema: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield key, value
            yield from keywords(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from keywords(item)


def test_openapi_integer_bounds_are_minimum_and_maximum(live_service: LiveService) -> None:
    spec = httpx.get(f"{live_service.url}/docs.json").json()
    assert not {"ge", "le", "gt", "lt"} & {key for key, _ in keywords(spec)}
    published = spec["components"]["schemas"]["Customer"]["properties"]
    inline = spec["paths"]["/v1/customer"]["post"]["requestBody"]["content"]["application/json"]
    for spec_ in FEATURE_SPECS:
        if spec_.kind != "category":
            for properties in (published, inline["schema"]["properties"]):
                bounds = properties[spec_.name]["minimum"], properties[spec_.name]["maximum"]
                assert bounds == (spec_.minimum, spec_.maximum), spec_.name


def test_openapi_info_names_the_build_and_describes_the_service(
    live_service: LiveService,
) -> None:
    info = httpx.get(f"{live_service.url}/docs.json").json()["info"]
    assert info["version"] == f"{importlib.metadata.version('churn')}+model.1.0"
    assert "churn" in info["description"]
    assert "/v1/customer" in info["description"]
    assert "shields.io" not in info["description"]
    assert "BentoML" not in info["description"]


def test_openapi_documents_content_negotiation(live_service: LiveService) -> None:
    operation = httpx.get(f"{live_service.url}/docs.json").json()["paths"]["/v2/predict-file"]
    operation = operation["post"]
    (parameter,) = operation["parameters"]
    assert (parameter["name"], parameter["in"], parameter["schema"]["enum"]) == (
        "format",
        "query",
        ["csv", "json"],
    )
    assert set(operation["responses"]["200"]["content"]) == {"text/csv", "application/json"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FileResults"
    }
    assert "406" in operation["responses"]
    for words in ("Accept", "?format=", "406", "422"):
        assert words in operation["description"]


# Where JSON and CSV overlap: a JSON number's text, sent as JSON and as a CSV cell.
JSON_NUMBERS = ["600", "600.0", "6e2", "6E2", "6.00e+2", "600.5", "1e400", "-0", "6e-1"]


@pytest.mark.parametrize("text", JSON_NUMBERS)
@pytest.mark.parametrize("column", ["CreditScore", "Balance"])
def test_json_and_csv_read_a_number_alike(
    live_service: LiveService, column: str, text: str
) -> None:
    customer = json.dumps(make_customer(**{column: 123456789})).replace("123456789", text)
    body = f'{{"customers": [{customer}]}}'
    as_json = httpx.post(
        f"{live_service.url}/v2/predict", content=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    upload = BANK_COLUMNS + "\n" + bank_row(1, **{column: text}) + "\n"
    as_csv = httpx.post(
        f"{live_service.url}/v2/predict-file?format=json",
        files={"file": ("x.csv", upload, "text/csv")},
    )
    assert as_json.status_code in (200, 422), as_json.text
    assert as_csv.status_code == 200, as_csv.text
    scored_csv = len(as_csv.json()["predictions"]) == 1
    assert (as_json.status_code == 200) == scored_csv, (as_json.text, as_csv.text)
    if scored_csv:
        assert (
            as_json.json()[0]["churn_probability"]
            == (as_csv.json()["predictions"][0]["churn_probability"])
        )
