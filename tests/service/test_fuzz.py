"""Generated requests: Schemathesis against the service's own OpenAPI document; bounded
in count, seeded, so a failure replays. Generated CSV uploads: test_csv_fuzz.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import LiveService

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
EXAMPLES_PER_ROUTE = 25


def test_generated_requests_never_get_a_5xx_and_match_the_schema(
    live_service: LiveService, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{live_service.url}/docs.json",
            "--checks",
            CHECKS,
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
    assert "passed" in report
    assert " failed" not in report
