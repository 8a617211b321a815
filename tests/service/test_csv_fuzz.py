"""Generated CSV uploads through both file routes: never a 5xx, and every record a
spreadsheet or Python's csv module finds accounted for, or the file refused; seeded, so
a failure replays."""

from __future__ import annotations

import csv
import io
import random

import httpx

from tests.conftest import LiveService
from tests.factories import BANK_COLUMNS, bank_row, csv_records, mutated_csv

CSV_CASES = 60
ROUTES = ("/v1/customerbatch", "/v2/predict-file")


def test_mutated_csv_files_never_get_a_5xx_and_every_row_is_accounted_for(
    live_service: LiveService,
) -> None:
    rng = random.Random(20261124)
    rows = [bank_row(i, 15600000 + i, Age=20 + i) for i in range(1, 21)]
    content = ("\n".join([BANK_COLUMNS, *rows]) + "\n").encode()
    refused = 0
    for case in range(CSV_CASES):
        upload = mutated_csv(content, rng)
        records = csv_records(upload)  # None: a quote left open takes in whole records
        for route in ROUTES:
            response = httpx.post(
                live_service.url + route, files={"file": ("f.csv", upload, "text/csv")}, timeout=60
            )
            assert response.status_code < 500, (case, route, upload, response.text)
            if response.is_error:
                assert response.headers["content-type"] == "application/json", (case, route)
                quote = response.json()["message"].startswith("A quote opens in")
                assert records is None or not quote, (case, route, upload)
                refused += records is None
                continue
            assert records is not None, (case, route, upload, "a 2xx for a file to refuse")
            if route == "/v1/customerbatch":
                assert len(response.json()) == records, (case, upload)
                continue
            rows_in = int(response.headers["x-rows-in"])
            assert rows_in == records, (case, upload)
            scored = int(response.headers["x-rows-scored"])
            assert rows_in == scored + int(response.headers["x-rows-rejected"]), case
            answered = list(csv.DictReader(io.StringIO(response.text)))
            assert [int(row["row"]) for row in answered] == list(range(1, rows_in + 1)), case
    assert refused >= 2 * 5  # the generator does make the files this is about
