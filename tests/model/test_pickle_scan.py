"""Reading a joblib file's libraries without running it: every compression joblib writes,
hostile pickles, damaged files, and the environment's pins that follow."""

from __future__ import annotations

import io
import os
import pickle
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import pytest

from churn.model.environments import Pins, pins_for, read_requirements
from churn.model.pickle_scan import PickleContents, scan
from churn.model.training import TrainingResult
from churn.record.errors import ModelIntegrityError

SKLEARN = metadata.version("scikit-learn")
XGBOOST = metadata.version("xgboost-cpu")


class _RunsOnUnpickle:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _custom_function(values: Any) -> Any:
    return values


@pytest.fixture(scope="module")
def pipeline(trained: TrainingResult) -> Any:
    """The session's trained pipeline, unpickled here only after its digest matched."""
    from churn.model.artifact import verified_bytes

    data = verified_bytes(trained.model_path, trained.metadata.artifact_sha256)
    return joblib.load(io.BytesIO(data))


def dumped(value: Any, tmp_path: Path, compress: Any = 0) -> bytes:
    path = tmp_path / "model.joblib"
    joblib.dump(value, path, compress=compress)
    return path.read_bytes()


@pytest.mark.parametrize(
    "compress",
    [0, 3, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)],
    ids=str,
)
def test_versions_of_the_projects_own_pipeline_in_every_compression(
    pipeline: Any, tmp_path: Path, compress: Any
) -> None:
    found = scan(dumped(pipeline, tmp_path, compress))
    assert found.top == "sklearn.pipeline.Pipeline"
    assert found.sklearn_version == SKLEARN
    assert found.xgboost_version == XGBOOST
    assert found.numpy_major == 2
    expected = None if compress == 0 else (compress[0] if isinstance(compress, tuple) else "zlib")
    assert found.compression == expected


def test_a_plain_pickle_is_read_too(pipeline: Any) -> None:
    found = scan(pickle.dumps(pipeline, protocol=2))
    assert (found.sklearn_version, found.xgboost_version) == (SKLEARN, XGBOOST)


def test_code_from_outside_the_libraries_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    with pytest.raises(ModelIntegrityError, match=r"posix\.system"):
        scan(dumped(_RunsOnUnpickle(marker), tmp_path))
    assert not marker.exists()


def test_a_custom_function_is_named(pipeline: Any, tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(ModelIntegrityError, match=r"_custom_function.*FunctionTransformer"):
        scan(dumped(FunctionTransformer(_custom_function), tmp_path))


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "not a joblib or pickle file"),
        (b"PK\x03\x04 a zip archive", "not a joblib or pickle file"),
        (b"\x04\x22\x4d\x18rest", "lz4"),
        (b"\x78\x9c damaged", "compression is damaged"),
        (b"\x80\x05\x95", "not a joblib or pickle file"),
    ],
    ids=["empty", "zip", "lz4", "bad-zlib", "truncated"],
)
def test_what_cannot_be_read_gets_a_clear_error(data: bytes, says: str) -> None:
    with pytest.raises(ModelIntegrityError, match=says):
        scan(data)


def test_a_truncated_joblib_file_is_refused(pipeline: Any, tmp_path: Path) -> None:
    data = dumped(pipeline, tmp_path)
    with pytest.raises(ModelIntegrityError, match="not a joblib or pickle file"):
        scan(data[: len(data) // 2])


def contents(sklearn: str, xgboost_version: str, numpy_major: int | None) -> PickleContents:
    return PickleContents(
        compression=None,
        top="sklearn.pipeline.Pipeline",
        sklearn_versions=frozenset({sklearn}),
        xgboost_versions=frozenset({xgboost_version}),
        numpy_major=numpy_major,
        names=frozenset(),
    )


NOTEBOOK_PINS = (
    ("scikit-learn", "1.6.1"), ("xgboost-cpu", "2.1.4"), ("numpy", "2.0.2"),
    ("scipy", "1.13.1"), ("pandas", "2.2.2"), ("joblib", "1.4.2"),
)  # fmt: skip


def test_pins_for_the_notebooks_pickle_are_its_requirements() -> None:
    pins = pins_for(contents("1.6.1", "2.1.4", 2))
    assert pins.packages == NOTEBOOK_PINS
    assert pins.guessed


def test_the_notebooks_requirements_override_the_guess(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# python 3.9\nflask==2.2.5\nscikit-learn==1.6.1\nxgboost==2.1.4\nnumpy==2.0.2\n"
        "pandas==2.2.2\njoblib==1.4.2  # the model file\ngunicorn>=20\n",
        encoding="utf-8",
    )
    assert read_requirements(requirements)["scikit-learn"] == "1.6.1"
    given = pins_for(contents("1.5.0", "2.0.0", 1), requirements)
    assert given.packages == NOTEBOOK_PINS
    assert not given.guessed
    # The same pins in any order are the same environment.
    assert Pins(tuple(reversed(NOTEBOOK_PINS)), guessed=False).key() == given.key()


def test_an_older_pair_gets_numpy_1() -> None:
    pins = pins_for(contents("1.3.2", "1.7.6", 1))
    assert dict(pins.packages) == {
        "scikit-learn": "1.3.2", "xgboost": "1.7.6", "numpy": "1.26.4", "scipy": "1.11.4",
        "pandas": "2.1.4", "joblib": "1.3.2",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("sklearn", "xgboost_version", "says"),
    [("0.24.2", "1.7.6", "scikit-learn 1.1 and later"), ("1.3.2", "0.90", "XGBoost 1.0")],
)
def test_unsupported_versions_are_refused(sklearn: str, xgboost_version: str, says: str) -> None:
    with pytest.raises(ModelIntegrityError, match=says):
        pins_for(contents(sklearn, xgboost_version, 1))


def test_a_pickle_that_says_nothing_asks_for_requirements() -> None:
    silent = PickleContents(None, None, frozenset(), frozenset(), None, frozenset())
    with pytest.raises(ModelIntegrityError, match="--requirements"):
        pins_for(silent)
