"""Generated requests: Schemathesis against the service's own OpenAPI document, and
mutated CSV uploads; bounded in count, seeded, so a failure replays."""

from __future__ import annotations

import csv
import io
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import LiveService
from tests.factories import BANK_COLUMNS, bank_row

EXAMPLES_PER_ROUTE = 25
# Every check Schemathesis has, on every route; one exception, with its reasons:
# - The file routes take a CSV whose contents no schema can state (a header naming the
#   nine features, a value in bounds in every cell, ids unique on /v1/customerbatch):
#   the document can only say "binary", so a file it generates (a PNG, random bytes) is
#   schema-valid and rightly refused with a 400 or 422.
# - /v2/predict-file's query parameter and form field `format` must agree when both are
#   sent (a 422 otherwise), a rule between two parameters that OpenAPI cannot express.
# So they are left out of the positive-data check only (a schema-valid request must be
# accepted); every other check, the no-5xx and response-schema checks included, still
# runs on them. The mutated-CSV test below sends them real files.
CONFIG = """
[checks]
enabled = true

[[operations]]
include-path = ["/v1/customerbatch", "/v2/predict-file"]
checks.positive_data_acceptance.enabled = false
"""


def test_generated_requests_never_get_a_5xx_and_match_the_schema(
    either_url: str, tmp_path: Path
) -> None:
    # Read from the working directory; on the command line, --checks would override it.
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{either_url}/docs.json",
            "--max-examples",
            str(EXAMPLES_PER_ROUTE),
            "--workers",
            "1",
            "--seed",
            "20261123",
            "--request-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert re.search(rf"Configuration:\s+{re.escape(str(tmp_path))}/schemathesis.toml", report)
    spec = httpx.get(f"{either_url}/docs.json").json()
    operations = sum(len(methods) for methods in spec["paths"].values())
    assert f"Tested: {operations}\n" in report
    assert "passed" in report
    assert " failed" not in report


CSV_CASES = 60
# Bytes that break CSVs in practice: quotes, separators, line ends, encodings, NUL.
SNIPPETS = (
    b'"', b",", b";", b"\t", b" ", b"\n", b"\r", b"\r\n", b"\x00", b"\xff",
    b"\xef\xbb\xbf", "\u2028".encode(), b"=", b"nan", b"1e999", b'""',
)  # fmt: skip


# Whole-file layouts that spreadsheets and hand edits produce: spaces after commas,
# CRLF, blank lines between records and before the header.
LAYOUTS: tuple[Callable[[bytes], bytes], ...] = (
    lambda data: data.replace(b",", b", "),
    lambda data: data.replace(b"\n", b"\r\n"),
    lambda data: data.replace(b"\n", b"\n\n"),
    lambda data: b"\n \n" + data,
)


def mutated(content: bytes, rng: random.Random) -> bytes:
    for layout in LAYOUTS:
        if rng.random() < 0.2:
            content = layout(content)
    data = bytearray(content)
    for _ in range(rng.randint(1, 6)):
        position = rng.randrange(len(data) + 1)
        roll = rng.random()
        if roll < 0.5:
            data[position:position] = rng.choice(SNIPPETS)
        elif roll < 0.8:
            del data[position : position + rng.randint(1, 20)]
        else:
            data[position:position] = rng.randbytes(rng.randint(1, 8))
    return bytes(data)


def records_in(upload: bytes) -> int:
    """The file's data records as Python's csv module counts them, blank lines aside: a
    count independent of the service's readers."""
    text = upload.decode("utf-8", "replace").removeprefix("\ufeff")
    records = csv.reader(io.StringIO(text, newline=""))
    blank: tuple[list[str], ...] = ([], [""])
    return sum(1 for record in records if [v.strip() for v in record] not in blank) - 1


def test_mutated_csv_files_never_get_a_5xx_and_every_row_is_accounted_for(
    live_service: LiveService,
) -> None:
    rng = random.Random(20261124)
    rows = [bank_row(i, 15600000 + i, Age=20 + i) for i in range(1, 21)]
    content = ("\n".join([BANK_COLUMNS, *rows]) + "\n").encode()
    for case in range(CSV_CASES):
        upload = mutated(content, rng)
        for route in ("/v1/customerbatch", "/v2/predict-file"):
            response = httpx.post(
                live_service.url + route, files={"file": ("f.csv", upload, "text/csv")}, timeout=60
            )
            assert response.status_code < 500, (case, route, upload, response.text)
            if response.is_error:
                assert response.headers["content-type"] == "application/json", (case, route)
            elif route == "/v2/predict-file":
                rows_in = int(response.headers["x-rows-in"])
                assert rows_in == records_in(upload), case
                scored = int(response.headers["x-rows-scored"])
                assert rows_in == scored + int(response.headers["x-rows-rejected"]), case
                answered = list(csv.DictReader(io.StringIO(response.text)))
                assert [int(row["row"]) for row in answered] == list(range(1, rows_in + 1)), case
