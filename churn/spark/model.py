"""The model a batch job scores with: verified on the driver, and again on every executor.

The model is the one the Bento packs, from the BentoML store by tag (by default the
service's, CHURN_MODEL_TAG), or a joblib file with its metadata beside it. The driver
checks its SHA-256 against the recorded one, then ships the file to the executors
(`SparkContext.addFile`) with that digest; each executor checks the bytes it received
before `joblib.load` (`churn.model.artifact.load_verified`), so a file swapped on the
way is refused there too, and the job stops with that message. Scoring needs only the
recorded metadata on the driver: it unpickles the model (checking it again) only when
asked for it (`DriverModel.loaded`, for the call list's explanations), so `churn batch
score` starts without importing scikit-learn or XGBoost.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.model.artifact import ModelMetadata, load_verified, metadata_path_for, verify
from churn.record.errors import ModelIntegrityError
from churn.settings import ServiceSettings

if TYPE_CHECKING:
    from pyspark import SparkContext

    from churn.model.store import LoadedModel
    from churn.scoring.scorer import Scorer


@dataclass(frozen=True)
class ModelRef:
    """What an executor is told about the model: which shipped file, and its digest."""

    file_name: str  # as shipped with SparkContext.addFile
    sha256: str
    threshold: float
    version: str
    tag: str  # the store's tag, or file:NAME for a joblib file
    source: str  # the exact tag, or the joblib file's absolute path: `call-list` reloads it


@dataclass(frozen=True)
class DriverModel:
    """A verified model: what the executors are told of it, and its file."""

    ref: ModelRef
    path: Path
    load: Callable[[], LoadedModel] = field(repr=False, compare=False)

    @functools.cached_property
    def loaded(self) -> LoadedModel:
        """The model unpickled, its digest checked again first."""
        return self.load()


def resolve(model: str | None) -> DriverModel:
    """The model named by a tag or a joblib file (default: the service's tag), verified."""
    name = model or ServiceSettings.from_environment().model_tag
    candidate = Path(name)
    if candidate.suffix == ".joblib" or candidate.is_file():
        return _from_file(candidate)
    from churn.model.store import STORED_FILE, load_stored, verify_stored

    stored = verify_stored(name)
    path = Path(stored.path_of(STORED_FILE))
    recorded: dict[str, Any] = dict(stored.info.metadata)
    # The digest recorded at import, which verify_stored just checked.
    digest = str(recorded.pop("stored_sha256"))
    metadata = ModelMetadata.model_validate(recorded)
    tag = str(stored.tag)
    ref = _ref(path, digest, metadata, tag, source=tag)
    return DriverModel(ref, path, functools.partial(load_stored, stored))


def _from_file(path: Path) -> DriverModel:
    metadata = ModelMetadata.read(metadata_path_for(path))
    verify(path, metadata.artifact_sha256)
    tag = f"file:{path.name}"
    ref = _ref(path, metadata.artifact_sha256, metadata, tag, str(path.resolve()))
    return DriverModel(ref, path, functools.partial(_load_file, path, metadata, tag))


def _load_file(path: Path, metadata: ModelMetadata, tag: str) -> LoadedModel:
    from churn.model.store import LoadedModel

    return LoadedModel(load_verified(path, metadata.artifact_sha256), metadata, tag=tag)


def _ref(path: Path, digest: str, metadata: ModelMetadata, tag: str, source: str) -> ModelRef:
    return ModelRef(
        file_name=f"churn-model-{digest[:16]}{path.suffix}",
        sha256=digest,
        threshold=metadata.threshold,
        version=metadata.model_version,
        tag=tag,
        source=source,
    )


def ship(context: SparkContext, path: Path, ref: ModelRef, folder: Path) -> None:
    """Send the model file to every executor under the name `ref` gives it."""
    shipped = folder / ref.file_name
    shutil.copyfile(path, shipped)
    context.addFile(str(shipped))


def shipping_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="churn-spark-model-")


_SCORERS: dict[str, Scorer] = {}


def executor_scorer(ref: ModelRef) -> Scorer:
    """The shipped model, loaded once per Python worker, only if its digest matches."""
    scorer = _SCORERS.get(ref.sha256)
    if scorer is None:
        from pyspark import SparkFiles

        from churn.scoring.scorer import Scorer

        path = Path(SparkFiles.get(ref.file_name))
        try:
            pipeline = load_verified(path, ref.sha256)
        except ModelIntegrityError as error:
            raise ModelIntegrityError(f"On an executor: {error.message}") from None
        scorer = _SCORERS[ref.sha256] = Scorer(pipeline, ref.threshold)
    return scorer
