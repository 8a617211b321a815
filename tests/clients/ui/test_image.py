"""The UI image's recipe: slim, non-root, configurable, and only the UI's dependencies."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "deploy" / "ui" / "Dockerfile").read_text(encoding="utf-8")
REQUIREMENTS = ROOT / "deploy" / "ui" / "requirements.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].split(";")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_the_image_pins_the_locked_versions_and_nothing_of_the_model() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    locked = {p["name"].lower(): p["version"] for p in lock["package"] if "version" in p}
    pins = _pins()
    assert {"streamlit", "altair", "pandas", "httpx", "pydantic", "pydantic-settings"} <= set(pins)
    # The client speaks plain HTTP: BentoML (and its servers, its tracing) stay out.
    assert "bentoml" not in pins
    assert {name: locked.get(name) for name in pins} == pins  # `make ui-requirements`
    assert not {"xgboost", "xgboost-cpu", "scikit-learn", "joblib", "scipy"} & set(pins)


def test_the_image_is_slim_non_root_with_a_health_check_and_settings_from_the_env() -> None:
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", DOCKERFILE, re.M)
    assert re.search(r"^USER 1000:1000$", DOCKERFILE, re.M)
    assert "useradd --uid 1000" in DOCKERFILE
    assert re.search(r"^HEALTHCHECK .*\n?.*/_stcore/health", DOCKERFILE, re.M)
    assert "${STREAMLIT_SERVER_PORT:-${PORT:-8501}}" in DOCKERFILE
    assert "CHURN_API_URL=" in DOCKERFILE
    # The model's code never enters the image; XSRF protection is never turned off.
    copied = " ".join(re.findall(r"^COPY (?!--from)(.*)$", DOCKERFILE, re.M))
    for module in ("scoring", "store", "training", "predictor", "artifacts", "service.py"):
        assert module not in copied
    assert "XSRF_PROTECTION" not in DOCKERFILE


def test_make_run_and_the_page_keep_xsrf_protection_on() -> None:
    for text in (
        (ROOT / "Makefile").read_text(encoding="utf-8"),
        *(p.read_text(encoding="utf-8") for p in (ROOT / "churn" / "ui").glob("*.py")),
    ):
        assert "enableXsrfProtection" not in text
        assert "XSRF_PROTECTION" not in text
