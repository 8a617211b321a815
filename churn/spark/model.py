"""The model a batch job scores with: verified on the driver, and again on every executor.

The model is the one the Bento packs, from the BentoML store by tag (by default the
service's, CHURN_MODEL_TAG), or a joblib file with its metadata beside it. The driver
checks its SHA-256 against the recorded one. The executors are not sent the pickle:
they get the model's booster and input columns (`churn.model.booster`), XGBoost's own
file format, which loading cannot run code from and which needs no scikit-learn. A
stored model has that file beside its pickle, with its digest, since import; for a
joblib file (or a model imported before) the driver derives it from the verified
pickle. The driver ships it (`SparkContext.addFile`) with its digest, and each
executor checks the bytes it received before loading them, so a file swapped on the
way is refused there too, and the job stops with that message. The call list's
explanations unpickle the model on the driver (`DriverModel.loaded`), checking it again.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from churn.model.artifact import (
    ModelMetadata,
    load_verified,
    metadata_path_for,
    verified_bytes,
    verify,
)
from churn.record.errors import ModelIntegrityError
from churn.settings import ServiceSettings

if TYPE_CHECKING:
    import tempfile

    from pyspark import SparkContext

    from churn.model.store import LoadedModel
    from churn.scoring.scorer import Scorer


@dataclass(frozen=True)
class ModelRef:
    """What an executor is told about the model: which shipped file, and its digest."""

    file_name: str  # the booster file, as shipped with SparkContext.addFile
    booster_sha256: str
    sha256: str  # of the model's pickle: the model a summary names
    threshold: float
    version: str
    tag: str  # the store's tag, or file:NAME for a joblib file
    source: str  # the exact tag, or the joblib file's absolute path: `call-list` reloads it


@dataclass(frozen=True)
class DriverModel:
    """A verified model: what the executors are told of it, and what they are sent."""

    ref: ModelRef
    booster: bytes = field(repr=False)
    load: Callable[[], LoadedModel] = field(repr=False, compare=False)

    @functools.cached_property
    def loaded(self) -> LoadedModel:
        """The model unpickled, its digest checked again first."""
        return self.load()


def check(model: str | None) -> None:
    """Refuse a model that fails its checksum, quickly: this unpickles nothing."""
    name, is_file = _named(model)
    if is_file:
        verify(Path(name), ModelMetadata.read(metadata_path_for(Path(name))).artifact_sha256)
    else:
        from churn.model.store import verify_stored

        verify_stored(name)


def resolve(model: str | None) -> DriverModel:
    """The model named by a tag or a joblib file (default: the service's tag), verified."""
    name, is_file = _named(model)
    if is_file:
        return _from_file(Path(name))
    from churn.model.store import (
        STORED_BOOSTER,
        load_stored,
        stored_model_metadata,
        verify_stored,
    )

    stored = verify_stored(name)
    metadata = stored_model_metadata(stored)
    load: Callable[[], LoadedModel] = functools.partial(load_stored, stored)
    booster_digest = stored.info.metadata.get("booster_sha256")
    if booster_digest:
        booster = verified_bytes(Path(stored.path_of(STORED_BOOSTER)), str(booster_digest))
    else:  # imported before the store kept it: `churn import-model` adds it
        loaded = load()
        booster, load = loaded.tree.to_bytes(), functools.partial(_same, loaded)
    # The digest recorded at import, which verify_stored just checked.
    digest = str(stored.info.metadata.get("stored_sha256") or booster_digest)
    tag = str(stored.tag)
    ref = _ref(digest, booster, metadata, tag, source=tag)
    return DriverModel(ref, booster, load)


def _named(model: str | None) -> tuple[str, bool]:
    name = model or ServiceSettings.from_environment().model_tag
    candidate = Path(name)
    return name, candidate.suffix == ".joblib" or candidate.is_file()


def _from_file(path: Path) -> DriverModel:
    metadata = ModelMetadata.read(metadata_path_for(path))
    verify(path, metadata.artifact_sha256)
    tag = f"file:{path.name}"
    loaded = _load_file(path, metadata, tag)
    booster = loaded.tree.to_bytes()
    ref = _ref(metadata.artifact_sha256, booster, metadata, tag, str(path.resolve()))
    return DriverModel(ref, booster, functools.partial(_same, loaded))


def _same(loaded: LoadedModel) -> LoadedModel:
    return loaded


def _load_file(path: Path, metadata: ModelMetadata, tag: str) -> LoadedModel:
    from churn.model.booster import TreeModel
    from churn.model.store import LoadedModel

    pipeline = load_verified(path, metadata.artifact_sha256)
    return LoadedModel(TreeModel.from_pipeline(pipeline), metadata, tag=tag)


def _ref(digest: str, booster: bytes, metadata: ModelMetadata, tag: str, source: str) -> ModelRef:
    booster_digest = hashlib.sha256(booster).hexdigest()
    return ModelRef(
        file_name=f"churn-model-{digest[:16]}-booster.ubj",
        booster_sha256=booster_digest,
        sha256=digest,
        threshold=metadata.threshold,
        version=metadata.model_version,
        tag=tag,
        source=source,
    )


def ship(context: SparkContext, model: DriverModel, folder: Path) -> None:
    """Send the booster file to every executor under the name `ref` gives it."""
    shipped = folder / model.ref.file_name
    shipped.write_bytes(model.booster)
    context.addFile(str(shipped))


def shipping_folder() -> tempfile.TemporaryDirectory[str]:
    import tempfile

    return tempfile.TemporaryDirectory(prefix="churn-spark-model-")


_SCORERS: dict[str, Scorer] = {}


def executor_scorer(ref: ModelRef) -> Scorer:
    """The shipped booster, loaded once per Python worker, only if its digest matches."""
    scorer = _SCORERS.get(ref.booster_sha256)
    if scorer is None:
        from pyspark import SparkFiles

        from churn.model.booster import TreeModel
        from churn.scoring.scorer import Scorer

        path = Path(SparkFiles.get(ref.file_name))
        try:
            data = verified_bytes(path, ref.booster_sha256)
        except ModelIntegrityError as error:
            raise ModelIntegrityError(f"On an executor: {error.message}") from None
        model = TreeModel.from_bytes(data)
        scorer = _SCORERS[ref.booster_sha256] = Scorer(model, ref.threshold)
    return scorer
