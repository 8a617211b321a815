"""What churn/serving/bentoml_internals.py relies on, checked against the installed BentoML.

A failure here means a BentoML upgrade changed one of its private internals: read the
message, then that module, before anything else.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, cast

import bentoml

from churn.serving import bentoml_internals
from churn.serving.timeout import RequestTimeout

UPGRADED = f"BentoML {bentoml.__version__} changed what churn/serving/bentoml_internals.py uses"


def test_bentoml_still_builds_its_time_limit_by_name_so_ours_takes_its_place() -> None:
    traffic = importlib.import_module(bentoml_internals.TRAFFIC_MODULE)
    original = getattr(traffic, "TimeoutMiddleware", None)
    assert original is not None, f"{UPGRADED}: {traffic.__name__}.TimeoutMiddleware is gone"
    if original is not RequestTimeout:
        parameters = list(inspect.signature(original.__init__).parameters)
        assert parameters == ["self", "app", "timeout"], (
            f"{UPGRADED}: TimeoutMiddleware now takes {parameters}; RequestTimeout takes "
            "(app, timeout)"
        )
    from bentoml._internal.server.base_app import BaseAppFactory

    bentoml_internals.replace_bentoml_timeout()

    class Factory(BaseAppFactory):
        name = "probe"

    built = [m for m in Factory(timeout=30).middlewares if cast(Any, m.cls) is RequestTimeout]
    assert len(built) == 1, (
        f"{UPGRADED}: its server app no longer builds the time limit from "
        f"{traffic.__name__}.TimeoutMiddleware, so the leaking one would run again"
    )
    assert built[0].kwargs == {"timeout": 30}


def test_the_model_store_of_this_process_can_still_be_swapped(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    before = bentoml.models.list()
    with bentoml_internals.model_store_at(tmp_path / "models"):
        assert bentoml.models.list() == [], (
            f"{UPGRADED}: BentoMLContainer.model_store no longer decides where bentoml.models looks"
        )
    assert [m.tag for m in bentoml.models.list()] == [m.tag for m in before]
