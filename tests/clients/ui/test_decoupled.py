"""The page reaches the model only over HTTP: it never imports the model or its libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, LiveService

pytestmark = pytest.mark.slow

# The UI talks to the service over HTTP: nothing of the model, scoring or serving loads.
FORBIDDEN = ("xgboost", "sklearn", "joblib", "churn.model", "churn.scoring", "churn.serving")
FORBIDDEN_EXACT = (
    "service",
    "churn.record.csv_header",
    "churn.record.csv_quotes",
    "churn.record.csv_reading",
    "churn.record.validation",
)

# Run in a fresh interpreter: this test process has imported the model's libraries already.
SESSION = """
import json, sys
from tests.factories import make_customer
from tests.clients.ui.drive import fill_form, metrics, open_page, sample_csv, submit, upload

page = submit(fill_form(open_page(), make_customer(), customer_id="C-1"))
page = upload(page, "branch.csv", sample_csv(30))
print(json.dumps({"metrics": metrics(page), "exception": len(page.exception),
                  "modules": sorted(sys.modules)}))
"""


def test_a_whole_session_imports_nothing_of_the_model(live_service: LiveService) -> None:
    env = {**os.environ, "CHURN_API_URL": live_service.url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SESSION],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exception"] == 0
    # The session really used the service: a prediction and a scored file.
    assert "Churn probability" in report["metrics"]
    assert report["metrics"]["Rows scored"] == "30"
    modules: list[str] = report["modules"]
    assert "churn.clients.ui.app" in modules or "churn.clients.ui.charts" in modules
    leaked = [
        name
        for name in modules
        if name in FORBIDDEN_EXACT or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert leaked == []


def test_the_ui_package_names_none_of_the_models_modules() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "churn" / "clients" / "ui").glob("*.py"))
    for name in (*FORBIDDEN, "churn.scoring.predictor", "import service", "from service"):
        assert name not in source
    # The scan read the UI's own imports: its way to the model, over HTTP, is among them.
    assert "from churn.clients.client import" in source
