"""The old Flask contract, through real HTTP against `bentoml serve`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask

from tests.conftest import LiveService, Oracle
from tests.factories import BANK_COLUMNS, EXAMPLE_CUSTOMER, bank_row, make_customer

FEATURE_HEADER = (
    "CustomerId,CreditScore,Geography,Age,Tenure,Balance,NumOfProducts,HasCrCard,"
    "IsActiveMember,EstimatedSalary"
)


def flask_bytes(value: Any) -> bytes:
    """What the old Flask app's `jsonify` sent for `value`, from Flask itself."""
    app = Flask("old")
    with app.app_context():
        response: Any = app.json.response(value)
        return bytes(response.get_data())


def post_customer(service: LiveService, body: Any) -> httpx.Response:
    return httpx.post(f"{service.url}/v1/customer", json=body, timeout=30)


def post_file(service: LiveService, content: bytes, name: str = "c.csv") -> httpx.Response:
    return httpx.post(
        f"{service.url}/v1/customerbatch", files={"file": (name, content, "text/csv")}, timeout=60
    )


def test_example_answers_exactly_as_flask_did(live_service: LiveService, oracle: Oracle) -> None:
    response = post_customer(live_service, EXAMPLE_CUSTOMER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    label = oracle.label(oracle.probability(EXAMPLE_CUSTOMER))
    assert response.content == flask_bytes({"Prediction": label})


def test_label_agrees_with_the_new_api(live_service: LiveService, oracle: Oracle) -> None:
    for customer in (EXAMPLE_CUSTOMER, make_customer(Age=25, IsActiveMember=1, NumOfProducts=2)):
        old = post_customer(live_service, customer).json()["Prediction"]
        new = httpx.post(f"{live_service.url}/v2/predict", json={"customers": [customer]}).json()
        assert old == new[0]["prediction"] == oracle.label(oracle.probability(customer))


def test_whole_numbers_sent_as_floats_are_scored_as_the_old_app_did(
    live_service: LiveService,
) -> None:
    # What a client holding every column as floats (pandas) sends.
    as_floats = {
        key: float(value) if isinstance(value, int) else value
        for key, value in EXAMPLE_CUSTOMER.items()
    }
    assert isinstance(as_floats["Age"], float)
    old = post_customer(live_service, as_floats)
    assert old.status_code == 200, old.text
    assert old.content == post_customer(live_service, EXAMPLE_CUSTOMER).content
    new = httpx.post(f"{live_service.url}/v2/predict", json={"customers": [as_floats]})
    assert new.status_code == 200, new.text
    assert new.json()[0]["prediction"] == old.json()["Prediction"]


def test_extra_keys_are_ignored(live_service: LiveService) -> None:
    response = post_customer(live_service, make_customer(Surname="Hargrave", RowNumber=1))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "allowed"),
    [
        ({k: v for k, v in EXAMPLE_CUSTOMER.items() if k != "Age"}, "Age", "18 to 100"),
        (make_customer(Age="sixty"), "Age", "18 to 100"),
        (make_customer(Geography="Italy"), "Geography", "France, Germany, Spain"),
        (make_customer(HasCrCard=True), "HasCrCard", "0 to 1"),
        (make_customer(Balance=None), "Balance", "0 to 100000000"),
        (make_customer(CreditScore=901), "CreditScore", "300 to 900"),
    ],
)
def test_bad_customers_get_a_4xx_naming_the_field(
    live_service: LiveService, body: dict[str, Any], field: str, allowed: str
) -> None:
    response = post_customer(live_service, body)
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert [p["field"] for p in problems] == [field]
    assert allowed in problems[0]["allowed"]
    assert response.json()["message"] == f"The request does not fit the schema: check {field}."


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2]", b'"text"', b"{"])
def test_unreadable_bodies_get_a_4xx(live_service: LiveService, content: bytes) -> None:
    response = httpx.post(
        f"{live_service.url}/v1/customer",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert response.json()["message"]


def test_batch_answers_exactly_as_flask_did(live_service: LiveService, oracle: Oracle) -> None:
    customers = {
        str(15634600 + i): make_customer(Age=30 + 10 * i, IsActiveMember=i % 2) for i in range(1, 6)
    }
    lines = [BANK_COLUMNS] + [
        bank_row(i, 15634600 + i, Age=30 + 10 * i, IsActiveMember=i % 2) for i in range(1, 6)
    ]
    response = post_file(live_service, ("\n".join(lines) + "\n").encode())
    assert response.status_code == 200
    answer = response.json()
    assert answer == {
        key: oracle.label(oracle.probability(customer)).title()
        for key, customer in customers.items()
    }
    # Both labels, so that a label swapped for the other cannot pass.
    assert set(answer.values()) == {"Churn", "Not Churn"}
    assert response.content == flask_bytes(answer)


def test_batch_column_order_is_free(live_service: LiveService) -> None:
    header = FEATURE_HEADER.split(",")
    reordered = list(reversed(header))
    row = dict(zip(header, ["42", *[str(v) for v in EXAMPLE_CUSTOMER.values()]], strict=True))
    content = ",".join(reordered) + "\n" + ",".join(row[c] for c in reordered) + "\n"
    response = post_file(live_service, content.encode())
    assert response.status_code == 200
    assert list(response.json()) == ["42"]


def rows_named(response: httpx.Response) -> set[int]:
    return {p["row"] for p in response.json()["problems"] if "row" in p}


def test_bad_rows_are_named_and_nothing_is_scored(live_service: LiveService) -> None:
    lines = [BANK_COLUMNS, bank_row(1, 1), bank_row(2, 2, Geography="Mars"), bank_row(3, 3, Age="")]
    response = post_file(live_service, ("\n".join(lines) + "\n").encode())
    assert response.status_code == 422
    assert rows_named(response) == {2, 3}
    assert "nothing was scored" in response.json()["message"]


def test_duplicate_ids_are_refused_not_collapsed(live_service: LiveService) -> None:
    lines = [BANK_COLUMNS, bank_row(1, 7), bank_row(2, 8), bank_row(3, 7)]
    response = post_file(live_service, ("\n".join(lines) + "\n").encode())
    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert (problem["row"], problem["field"]) == (3, "CustomerId")
    assert "row 1" in problem["message"]


def test_missing_id_column_is_named(live_service: LiveService) -> None:
    content = FEATURE_HEADER.replace("CustomerId,", "") + "\n600,France,40,3,0,1,1,1,5000\n"
    response = post_file(live_service, content.encode())
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["problems"]] == ["CustomerId"]


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"\xff\xfeC\x00u\x00s\x00", 400, "UTF-16"),
        ((BANK_COLUMNS + "\n").encode(), 422, "no customer rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", 400, "binary"),
        (b"just some text\nwithout columns\n", 422, "missing required columns"),
    ],
)
def test_files_the_old_app_crashed_on(
    live_service: LiveService, content: bytes, status: int, words: str
) -> None:
    response = post_file(live_service, content)
    assert response.status_code == status
    assert words in response.json()["message"]


def test_non_utf8_cells_are_reported_by_row(live_service: LiveService) -> None:
    content = BANK_COLUMNS + "\n" + bank_row(1, 1) + "\n" + bank_row(2, 2, Geography="Espa\xf1a")
    response = post_file(live_service, content.encode("latin-1"))
    assert response.status_code == 422
    assert rows_named(response) == {2}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"files": {"other": ("c.csv", b"a,b\n", "text/csv")}},
        {"content": b"CustomerId\n1\n", "headers": {"content-type": "text/csv"}},
        {
            "content": b"--x\r\nbroken",
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
    ],
)
def test_requests_without_a_file_get_a_400(
    live_service: LiveService, kwargs: dict[str, Any]
) -> None:
    response = httpx.post(f"{live_service.url}/v1/customerbatch", **kwargs)
    assert response.status_code == 400
    message = response.json()["message"]
    assert "multipart" in message or "'file'" in message
