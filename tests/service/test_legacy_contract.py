"""The old Flask contract, through real HTTP against `bentoml serve`."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pandas as pd
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


def labels_by_row(service: LiveService, content: bytes) -> list[str]:
    """The service's label for each row of a file, in file order, in the old words."""
    response = httpx.post(
        f"{service.url}/v2/predict-file", files={"file": ("c.csv", content)}, timeout=60
    )
    rows = csv.DictReader(io.StringIO(response.text))
    return ["Churn" if row["prediction"] == "churn" else "Not Churn" for row in rows]


def old_app_bytes(content: bytes, labels: list[str]) -> bytes:
    """What the old app answered for this file: it read it with pandas, keyed its answer
    by the values of the CustomerId column, and sent it with Flask's `jsonify`, which
    sorts keys by those values. The labels are the service's (the old app cut at 0.5)."""
    frame = pd.read_csv(io.BytesIO(content))
    return flask_bytes(dict(zip(frame["CustomerId"], labels, strict=True)))


def id_file(ids: list[str]) -> bytes:
    rows = [
        ",".join([cid, *(str(v) for v in make_customer(Age=25 + 7 * i).values())])
        for i, cid in enumerate(ids)
    ]
    return ("\n".join([FEATURE_HEADER, *rows]) + "\n").encode()


# pandas types the id column as a whole; the old app's keys, and their order, follow.
ID_TYPES = {
    "whole numbers sort as numbers": ["15574012", "9", "100", "10"],
    "leading zeros and signs are numbers": ["007", "+8", "0", "-3", "11"],
    "a point or an exponent makes floats": ["7.0", "15574012", "1e3", "2.5", "10"],
    "text among numbers makes strings": ["C-10", "9", "10", " C-2 ", "100"],
    "true and false": ["True", "False"],
    "numbers past 64 bits": ["18446744073709551616", "5", "-9223372036854775809"],
}


@pytest.mark.parametrize("name", ID_TYPES)
def test_batch_keys_are_typed_and_sorted_as_the_old_app_did(
    live_service: LiveService, name: str
) -> None:
    content = id_file(ID_TYPES[name])
    response = post_file(live_service, content)
    assert response.status_code == 200, response.text
    assert response.content == old_app_bytes(content, labels_by_row(live_service, content))


def test_ids_pandas_reads_as_missing_are_named(live_service: LiveService) -> None:
    # The old app keyed these customers `NaN`; here, as for an empty id, a 422.
    response = post_file(live_service, id_file(["5", "NA", "6", "null"]))
    assert response.status_code == 422
    assert [(p["row"], p["field"]) for p in response.json()["problems"]] == [
        (2, "CustomerId"),
        (4, "CustomerId"),
    ]
    assert "missing" in response.json()["problems"][0]["message"]


def test_ids_that_are_one_number_are_duplicates(live_service: LiveService) -> None:
    # pandas reads both as 7: the old app answered one of the two customers.
    response = post_file(live_service, id_file(["007", "8", "7"]))
    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert (problem["row"], problem["field"]) == (3, "CustomerId")
    assert "row 1" in problem["message"]
