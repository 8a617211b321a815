"""The drift alert rules, checked and unit-tested by Prometheus's own promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

RULES = ROOT / "deploy" / "prometheus" / "churn-drift-rules.yml"
UNIT_TESTS = Path(__file__).with_name("alerts.test.yml")
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None,
    reason="no promtool: install Debian's Prometheus with `apt-get install -y prometheus`",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_alert_rules_are_valid() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout


def test_the_alerts_fire_when_they_should_and_not_before() -> None:
    tested = promtool("test", "rules", str(UNIT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_rules_name_the_configured_window_not_an_hour() -> None:
    # Issue 27: the text said "last hour" whatever CHURN_DRIFT_WINDOW_MINUTES said.
    text = RULES.read_text()
    assert "last hour" not in text
    assert text.count("{{ $labels.minutes }}") == 2
