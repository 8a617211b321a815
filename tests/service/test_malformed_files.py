"""A corpus of malformed CSVs through both batch routes: nothing is lost or silently fixed.

The old route answers 4xx naming the bad rows (or 200 when the file is only unusual,
not wrong); the new route scores every valid row and reports every invalid one, so that
rows in = rows scored + rows rejected.
"""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from tests.conftest import LiveService
from tests.factories import BANK_COLUMNS, bank_row


def lines(*rows: str, newline: str = "\n") -> bytes:
    return (newline.join([BANK_COLUMNS, *rows]) + newline).encode()


# name -> (file, rows in, rejected row numbers)
CORPUS: dict[str, tuple[bytes, int, set[int]]] = {
    "truncated row": (lines(bank_row(1, 1), "2,2,Cut,600,France", bank_row(3, 3)), 3, {2}),
    "shifted columns": (lines(bank_row(1, 1), bank_row(2, 2) + ",extra,cells"), 2, {2}),
    "question marks": (lines(bank_row(1, 1, Balance="?"), bank_row(2, 2)), 2, {1}),
    "empty cells": (lines(bank_row(1, 1, Age="", Tenure=""), bank_row(2, 2)), 2, {1}),
    "text in numbers": (lines(bank_row(1, 1, CreditScore="good"), bank_row(2, 2)), 2, {1}),
    "huge numbers": (
        lines(bank_row(1, 1, Balance="9" * 400), bank_row(2, 2, EstimatedSalary="1e308")),
        2,
        {1, 2},
    ),
    "nan and inf": (
        lines(bank_row(1, 1, Balance="NaN"), bank_row(2, 2, Balance="-inf"), bank_row(3, 3)),
        3,
        {1, 2},
    ),
    "byte order mark": (b"\xef\xbb\xbf" + lines(bank_row(1, 1), bank_row(2, 2)), 2, set()),
    "latin-1": (
        (
            BANK_COLUMNS
            + "\n"
            + bank_row(1, 1).replace("Hargrave", "Müller")
            + "\n"
            + bank_row(2, 2, Geography="Españ")
            + "\n"
        ).encode("latin-1"),
        2,
        {2},
    ),  # fmt: skip
    "crlf": (lines(bank_row(1, 1), bank_row(2, 2), newline="\r\n"), 2, set()),
    "quoted newlines": (
        lines(bank_row(1, 1).replace("Hargrave", '"Harg\nrave"'), bank_row(2, 2)),
        2,
        set(),
    ),
    "formula-like ids": (lines(bank_row(1, "=1+1"), bank_row(2, "@SUM(A1)")), 2, set()),
    "spaces after commas": (
        ", ".join(lines(bank_row(1, 1), bank_row(2, 2)).decode().split(",")).encode(),
        2,
        set(),
    ),
    "blank lines": (b"\n" + lines(bank_row(1, 1), "", bank_row(2, 2)), 2, set()),
}


def post(service: LiveService, route: str, content: bytes, **data: str) -> httpx.Response:
    return httpx.post(
        service.url + route,
        files={"file": ("customers.csv", content, "text/csv")},
        data=data,
        timeout=60,
    )


@pytest.mark.parametrize("name", CORPUS)
def test_new_route_accounts_for_every_row(live_service: LiveService, name: str) -> None:
    content, rows_in, rejected = CORPUS[name]
    response = post(live_service, "/v2/predict-file", content)
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(r["row"]) for r in rows] == list(range(1, rows_in + 1))
    assert {int(r["row"]) for r in rows if r["status"] == "rejected"} == rejected
    assert all(r["errors"] for r in rows if r["status"] == "rejected")
    assert all(r["churn_probability"] for r in rows if r["status"] == "scored")
    assert int(response.headers["x-rows-in"]) == rows_in
    assert int(response.headers["x-rows-scored"]) + int(response.headers["x-rows-rejected"]) == (
        rows_in
    )
    for row in rows:
        assert not row["CustomerId"].startswith(("=", "@", "+", "-"))


@pytest.mark.parametrize("name", CORPUS)
def test_old_route_names_the_rows_or_answers_all(live_service: LiveService, name: str) -> None:
    content, rows_in, rejected = CORPUS[name]
    response = post(live_service, "/v1/customerbatch", content)
    if rejected:
        assert response.status_code == 422
        assert {p["row"] for p in response.json()["problems"]} == rejected
    else:
        assert response.status_code == 200
        assert len(response.json()) == rows_in


def test_duplicate_ids(live_service: LiveService) -> None:
    content = lines(bank_row(1, 5), bank_row(2, 6), bank_row(3, 5))
    old = post(live_service, "/v1/customerbatch", content)
    assert old.status_code == 422
    assert {p["row"] for p in old.json()["problems"]} == {3}
    new = post(live_service, "/v2/predict-file", content, format="json")
    summary = new.json()["summary"]
    assert (summary["rows_in"], summary["rows_scored"], summary["duplicate_ids"]) == (3, 3, 1)


def test_binary_file_named_csv(live_service: LiveService) -> None:
    content = bytes(range(256)) * 8
    for route in ("/v1/customerbatch", "/v2/predict-file"):
        response = post(live_service, route, content)
        assert response.status_code == 400
        assert "binary" in response.json()["message"]


def csv_part(content: bytes, field: str = "file") -> tuple[str, tuple[str, bytes, str]]:
    return (field, ("customers.csv", content, "text/csv"))


@pytest.mark.parametrize(
    ("parts", "data", "named"),
    [
        ([csv_part(lines(bank_row(1, 1))), csv_part(lines(bank_row(2, 2)))], {}, "2 files"),
        ([csv_part(lines(bank_row(1, 1))), csv_part(lines(bank_row(2, 2)), "more")], {}, "'more'"),
        ([csv_part(lines(bank_row(1, 1)))], {"format": ["json", "csv"]}, "'format'"),
    ],
    ids=["two files", "a file in another field", "a field sent twice"],
)
def test_a_form_with_two_answers_is_refused_not_half_read(
    live_service: LiveService,
    parts: list[tuple[str, tuple[str, bytes, str]]],
    data: dict[str, list[str]],
    named: str,
) -> None:
    for route in ("/v1/customerbatch", "/v2/predict-file"):
        response = httpx.post(live_service.url + route, files=parts, data=data, timeout=60)
        assert response.status_code == 400, response.text
        assert named in response.json()["message"]
