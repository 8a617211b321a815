"""Fixtures of the service tests beyond tests/conftest.py's."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import start_service, stop, wait_for


@pytest.fixture(scope="session")
def routes_only(bundled_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service with the fast path off, in a BentoML home of its own: a server clears
    the metrics directory of its home when it starts, which would reset the other's."""
    scratch = tmp_path_factory.mktemp("routes-only")
    home = scratch / "bentoml"
    shutil.copytree(bundled_store / "models", home / "models")
    url, process = start_service(home, scratch / "service.log", {"CHURN_FAST_PATH": "false"})
    try:
        wait_for(url + "/readyz", process)
        yield url
    finally:
        stop(process)
