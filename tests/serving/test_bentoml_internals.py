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


def test_bentoml_still_builds_its_http_metrics_by_name_so_ours_takes_its_place() -> None:
    instruments = importlib.import_module(bentoml_internals.INSTRUMENTS_MODULE)
    original = getattr(instruments, "RunnerTrafficMetricsMiddleware", None)
    assert original is not None, (
        f"{UPGRADED}: {instruments.__name__}.RunnerTrafficMetricsMiddleware is gone"
    )
    ours = bentoml_internals.route_metrics_class()
    base = ours.__mro__[1]
    parameters = list(inspect.signature(base.__init__).parameters)
    assert parameters == ["self", "app", "namespace", "skip_paths"], (
        f"{UPGRADED}: RunnerTrafficMetricsMiddleware now takes {parameters}"
    )
    setup = inspect.getsource(base._setup)
    for name in (
        "metrics_request_total", "metrics_request_duration", "metrics_request_in_progress",
        "metrics_last_request_timestamp",
    ):  # fmt: skip
        assert f"self.{name} =" in setup, f"{UPGRADED}: its _setup no longer makes {name}"
    app = importlib.import_module("_bentoml_impl.server.app")
    builds = inspect.getsource(app.ServiceAppFactory.middlewares.fget)
    assert "instruments import" in builds, (
        f"{UPGRADED}: its server app no longer imports the metrics middleware from "
        f"{instruments.__name__} when it builds, so the per-path one would run again"
    )
    assert "RunnerTrafficMetricsMiddleware" in builds


def test_prometheus_client_still_opens_its_files_by_the_module_name(tmp_path: Path) -> None:
    values = importlib.import_module(bentoml_internals.VALUES_MODULE)
    assert "MmapedDict(filename)" in inspect.getsource(values.MultiProcessValue), (
        f"prometheus_client changed what {bentoml_internals.__name__} uses: "
        "MultiProcessValue no longer opens its files through values.MmapedDict"
    )
    allocated = bentoml_internals.allocated_dict_class()
    metrics = allocated(str(tmp_path / "counter_1.db"))
    key = '["metric", "metric_total", {"endpoint": "/v1/customer"}, "help"]'
    used = metrics._used
    metrics.write_value(key, 3.0, 0.0)
    assert metrics._used - used == bentoml_internals._entry_size(key), (
        "prometheus_client changed the size of an entry in its metrics files"
    )
    for i in range(2000):  # grows the file past its first 64 KB, allocated first
        metrics.write_value(f"{key}{i}", 1.0, 0.0)
    assert (tmp_path / "counter_1.db").stat().st_blocks * 512 >= metrics._capacity
    metrics.close()
    written = values.MmapedDict.read_all_values_from_file(str(tmp_path / "counter_1.db"))
    assert {entry[0]: entry[1] for entry in written}[key] == 3.0


def test_a_metrics_file_that_cannot_be_written_keeps_the_values_in_memory(
    tmp_path: Path, caplog: Any
) -> None:
    allocated = bentoml_internals.allocated_dict_class()
    metrics = allocated(str(tmp_path / "no-such-folder" / "counter_1.db"))
    for i in range(2000):
        metrics.write_value(f"key-{i}", float(i), 0.0)
    assert metrics.read_value("key-1999") == (1999.0, 0.0)
    assert "kept in memory" in caplog.text
    metrics.close()


def test_an_api_method_wrapper_stored_on_the_instance_is_what_bentoml_finds() -> None:
    APIMethod = importlib.import_module("_bentoml_sdk.method").APIMethod  # noqa: N806

    assert not hasattr(APIMethod, "__set__"), (
        f"{UPGRADED}: APIMethod is now a data descriptor, so a wrapper stored on the "
        "instance is no longer found first (build_api_methods_once)"
    )

    @bentoml.service
    class Probe:
        @bentoml.api  # type: ignore[untyped-decorator]
        def echo(self, text: str) -> str:
            return text

    instance = cast(Any, Probe).inner()
    assert instance.echo is not instance.echo, (
        f"{UPGRADED}: APIMethod.__get__ no longer builds a wrapper on every lookup; "
        "build_api_methods_once has nothing left to save and can go"
    )
    bentoml_internals.build_api_methods_once(instance, cast(Any, Probe).apis)
    stored = instance.echo
    assert instance.echo is stored
    assert stored.local is stored
    assert stored("hi") == "hi"
    server = importlib.import_module("_bentoml_impl.server.app")
    calls = inspect.getsource(server.ServiceAppFactory)
    assert "getattr(self._service_instance, name).local" in calls, (
        f"{UPGRADED}: its server no longer calls an API method through the wrapper's "
        "`.local` looked up on the instance"
    )
