"""A corpus of malformed CSVs through both batch routes: nothing is lost or silently fixed.

The old route answers 4xx naming the bad rows (or 200 when the file is only unusual,
not wrong); the new route scores every valid row and reports every invalid one, so that
rows in = rows scored + rows rejected.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveService, run_churn
from tests.factories import BANK_COLUMNS, bank_row, make_customer


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


BOUNDARY = "churn-test-boundary"


def multipart(*parts: bytes, end: bytes = b"--" + BOUNDARY.encode() + b"--\r\n") -> bytes:
    return b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + part for part in parts) + end


FILE_PART = b'Content-Disposition: form-data; name="file"; filename="c.csv"\r\n\r\n' + lines(
    *(bank_row(i, i) for i in range(1, 201))
)

TEXT_PART = b'Content-Disposition: form-data; name="n"\r\n\r\n1\r\n'
FORM = f"multipart/form-data; boundary={BOUNDARY}"
# name -> (Content-Type, body, words in the message): bodies the multipart reader refuses.
MALFORMED_FORMS: dict[str, tuple[str, bytes, str]] = {
    # A body cut in the file, before its closing boundary: no file came, not half of one.
    "the file cut short": (FORM, multipart(FILE_PART[: len(FILE_PART) // 2], end=b""), "'file'"),
    "no boundary": ("multipart/form-data", multipart(FILE_PART + b"\r\n"), "boundary"),
    "a part with no name": (
        FORM,
        multipart(b'Content-Disposition: form-data; filename="c.csv"\r\n\r\n1\r\n'),
        "name",
    ),
    "too many parts": (
        FORM,
        multipart(FILE_PART + b"\r\n", *[TEXT_PART] * 1000),
        "1000 parts",
    ),
    "not multipart inside": (FORM, b"CustomerId\n1\n" * 100, "multipart"),
}  # fmt: skip


@pytest.mark.parametrize("name", MALFORMED_FORMS)
def test_malformed_multipart_bodies_are_400s_never_a_partial_answer(
    live_service: LiveService, name: str
) -> None:
    content_type, body, words = MALFORMED_FORMS[name]
    for route in FILE_ROUTES:
        response = httpx.post(
            live_service.url + route,
            content=body,
            headers={"content-type": content_type},
            timeout=60,
        )
        assert response.status_code == 400, response.text
        assert words in response.json()["message"]


def edited(rows: int, edits: dict[int, Callable[[str], str]], newline: str = "\n") -> bytes:
    """A file of `rows` customers, with row N's line passed through edits[N]."""
    lines = [bank_row(i, 15_600_000 + i) for i in range(1, rows + 1)]
    for row, edit in edits.items():
        lines[row - 1] = edit(lines[row - 1])
    return lines_of(lines, newline)


def lines_of(rows: list[str], newline: str) -> bytes:
    return (newline.join([BANK_COLUMNS, *rows]) + newline).encode()


def open_quote(line: str) -> str:
    return line.replace("Hargrave", '"Hargrave')


def close_quote(line: str) -> str:
    return line.replace("Hargrave", 'Hargrave"')


FILE_ROUTES = ("/v1/customerbatch", "/v2/predict-file")

# name -> (file, row and column where the quote opens): files whose records a quote
# left open would merge; both readers, like Python's csv module, would read on quietly.
QUOTE_LEFT_OPEN: dict[str, tuple[bytes, int, str]] = {
    "never closed, row 2 of 6": (edited(6, {2: open_quote}), 2, "Surname"),
    "never closed, CRLF": (edited(6, {2: open_quote}, "\r\n"), 2, "Surname"),
    "never closed, CR only": (edited(6, {2: open_quote}, "\r"), 2, "Surname"),
    "never closed, in the id": (
        edited(6, {3: lambda line: line.replace("15600003", '"15600003')}),
        3,
        "CustomerId",
    ),
    "never closed, in the last column": (
        edited(6, {5: lambda line: line[:-1] + '"1'}),
        5,
        "Exited",
    ),
    "closed by a stray quote two rows on": (
        edited(6, {2: open_quote, 4: close_quote}),
        2,
        "Surname",
    ),
}


@pytest.mark.parametrize("name", QUOTE_LEFT_OPEN)
def test_a_quote_left_open_is_refused_by_both_routes_naming_its_row(
    live_service: LiveService, name: str
) -> None:
    content, row, column = QUOTE_LEFT_OPEN[name]
    answers = {route: post(live_service, route, content) for route in FILE_ROUTES}
    for route, response in answers.items():
        assert response.status_code == 422, (route, response.text)
        body = response.json()
        assert [(p["row"], p["field"]) for p in body["problems"]] == [(row, column)], route
        assert body["message"].startswith(f"A quote opens in {column} on row {row} ")
    assert answers["/v1/customerbatch"].json() == answers["/v2/predict-file"].json()


def test_a_quote_left_open_on_row_12_of_200000_loses_no_customer_quietly(
    live_service: LiveService, tmp_path: Path
) -> None:
    # The file: both routes, and the CLI, refuse it naming row 12, instead of a
    # 200 that accounts for 12 of 200,000 customers.
    content = edited(200_000, {12: open_quote})
    for route in FILE_ROUTES:
        response = post(live_service, route, content)
        assert response.status_code == 422, (route, response.text[:300])
        assert [p["row"] for p in response.json()["problems"]] == [12]
        assert "line 13 of the file) and is never closed" in response.json()["message"]
    source = tmp_path / "customers.csv"
    source.write_bytes(content)
    result = run_churn("predict", str(source), "--url", live_service.url)
    assert result.returncode != 0
    assert "row 12 Surname: opens a quote on line 13 that is never closed" in result.stderr
    assert not source.with_suffix(".predictions.csv").exists()


def test_quoted_line_breaks_that_hold_no_records_are_scored(live_service: LiveService) -> None:
    # An address over two lines, with commas, is a value: both routes score the rows.
    address = '"12 Rue Haute,\r\nParis, France"'
    content = edited(3, {2: lambda line: line.replace("Hargrave", address)}, "\r\n")
    for route in FILE_ROUTES:
        response = post(live_service, route, content)
        assert response.status_code == 200, (route, response.text)
    assert post(live_service, "/v2/predict-file", content).headers["x-rows-scored"] == "3"


FORMULA_IDS = ['=HYPERLINK("http://x","y")', "@SUM(A1)", "+1", "-2", "|cmd", "%0A"]


def test_formula_like_ids_are_made_safe_in_csv_and_kept_as_sent_in_json(
    live_service: LiveService,
) -> None:
    content = lines_of(
        [bank_row(i, '"' + cid.replace('"', '""') + '"') for i, cid in enumerate(FORMULA_IDS, 1)],
        "\n",
    )
    as_csv = list(csv.DictReader(io.StringIO(post(live_service, "/v2/predict-file", content).text)))
    assert [row["CustomerId"] for row in as_csv] == ["'" + cid for cid in FORMULA_IDS]
    as_json = post(live_service, "/v2/predict-file", content, format="json").json()
    assert [row["CustomerId"] for row in as_json["predictions"]] == FORMULA_IDS
    legacy = post(live_service, "/v1/customerbatch", content).json()
    assert sorted(legacy) == sorted(FORMULA_IDS)
    customers = [make_customer(CustomerId=cid) for cid in FORMULA_IDS]
    predicted = httpx.post(
        live_service.url + "/v2/predict", json={"customers": customers}, timeout=60
    ).json()
    assert [row["CustomerId"] for row in predicted] == FORMULA_IDS
