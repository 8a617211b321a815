"""Generated requests: Schemathesis against the service's own OpenAPI document; bounded
in count, seeded, so a failure replays. Generated CSV uploads: test_csv_fuzz.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

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
