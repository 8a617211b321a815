"""The model a batch job scores with: one file, verified on the driver and on every executor.

The batch model file is the stored model's booster (`churn.model.booster.TreeModel`:
XGBoost's UBJSON, with the input columns in an attribute), with what scoring needs
besides the trees in more of its attributes: the threshold, the label rule, the model's
version and tag, and the store's digest of its booster. It is not a pickle: loading it
runs no code and needs neither scikit-learn nor joblib, and one SHA-256 covers all of it.

`churn batch export-model --out FILE` writes it from the BentoML store and prints its
digest. A job names it with `--model PATH_OR_URI --model-sha256 HEX`, so that a driver in
cluster deploy mode needs no store: the driver reads it (a local path directly, a URI
through Spark's own file systems, with the platform's credentials), checks its digest,
and ships the bytes with the job's function; each executor checks them again before it
loads them. Without `--model`, a driver with the store (client mode, a laptop) takes the
service's model from it by tag, as the export would.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast, get_args
from urllib.parse import urlsplit

from churn.record.errors import InvalidInput, ModelIntegrityError
from churn.record.outcome import LabelRule

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from churn.model.booster import TreeModel
    from churn.scoring.scorer import Scorer

_ATTRIBUTES = ("threshold", "label_rule", "model_version", "model_tag", "booster_sha256")
_PREFIX = "churn_batch_"
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BatchModel:
    """The batch model file's bytes, their digest, and what its attributes say."""

    data: bytes = field(repr=False)
    sha256: str
    threshold: float
    label_rule: str
    version: str
    tag: str
    booster_sha256: str  # the store's digest of the booster alone
    source: str  # the path or URI it was read from, or store:TAG

    def scorer(self) -> Scorer:
        """A scorer of these bytes, once their digest is checked again here."""
        return _load(self.data, self.sha256)[1]


def from_store(tag: str | None) -> BatchModel:
    """The service's model (CHURN_MODEL_TAG by default) from this machine's store, verified."""
    try:
        from churn.model.store import BOOSTER_DIGEST, load_stored, verify_stored
    except ImportError:  # the batch-only wheel: no BentoML, so no store
        raise InvalidInput(
            "No model store here (the batch wheel has no BentoML): export the model where "
            "the service's store is (churn batch export-model) and give the job "
            "--model FILE --model-sha256 HEX."
        ) from None
    from churn.settings import ModelSettings

    stored = verify_stored(tag or ModelSettings.from_environment().model_tag)
    loaded = load_stored(stored)
    metadata = loaded.metadata
    values = {
        "threshold": repr(float(metadata.threshold)),
        "label_rule": metadata.label_rule,
        "model_version": metadata.model_version,
        "model_tag": loaded.tag,
        "booster_sha256": str(stored.info.metadata[BOOSTER_DIGEST]),
    }
    data = _with_attributes(loaded.tree, values)
    return _described(data, hashlib.sha256(data).hexdigest(), f"store:{loaded.tag}")


def _with_attributes(tree: TreeModel, values: dict[str, str]) -> bytes:
    from churn.model.booster import TreeModel

    booster = tree.booster.copy()
    booster.set_attr(**{_PREFIX + name: value for name, value in values.items()})
    return TreeModel(booster, tree.columns).to_bytes()


def read(spark: SparkSession | None, location: str, sha256: str) -> BatchModel:
    """The batch model file at a path or URI, refused unless its SHA-256 is `sha256`."""
    expected = sha256.strip().lower()
    if not _HEX.fullmatch(expected):
        raise InvalidInput("--model-sha256 must be 64 hexadecimal digits (sha256sum's output).")
    if is_local(location):
        path = Path(location.removeprefix("file://"))
        try:
            data = path.read_bytes()
        except OSError as error:
            raise InvalidInput(f"Cannot read the model {location}: {error.strerror}.") from None
    else:
        data = _read_through_spark(spark, location)
    _check(data, expected, location)
    return _described(data, expected, location)


def is_local(location: str) -> bool:
    """A path of this machine (or file://), which Python reads without Spark."""
    scheme = urlsplit(location).scheme
    return scheme in ("", "file") or len(scheme) == 1  # C:\ on Windows


def _read_through_spark(spark: SparkSession | None, location: str) -> bytes:
    """A file on the cluster's storage, read by Spark with the platform's credentials."""
    if spark is None:
        raise InvalidInput(f"{location} is read through Spark, which has not started.")
    rows = spark.read.format("binaryFile").load(location).select("content").collect()
    if len(rows) != 1:
        raise InvalidInput(f"{location} names {len(rows)} files; --model names one file.")
    return bytes(rows[0]["content"])


def _check(data: bytes, expected: str, name: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual, expected):
        raise ModelIntegrityError(
            f"Refusing to load {name}: its SHA-256 is {actual}, expected {expected}. "
            "It is not the exported model."
        )


def _described(data: bytes, sha256: str, source: str) -> BatchModel:
    attributes, _ = _load(data, sha256)
    try:
        threshold = float(attributes["threshold"])
    except (KeyError, ValueError):
        raise ModelIntegrityError(
            f"{source} is a booster without a threshold: export it with `churn batch export-model`."
        ) from None
    return BatchModel(
        data=data,
        sha256=sha256,
        threshold=threshold,
        label_rule=attributes.get("label_rule", ">="),
        version=attributes.get("model_version", ""),
        tag=attributes.get("model_tag", ""),
        booster_sha256=attributes.get("booster_sha256", ""),
        source=source,
    )


# Per Python worker: a worker scores many tasks, and loads the model once.
_LOADED: dict[str, tuple[dict[str, str], Scorer]] = {}


def _load(data: bytes, sha256: str) -> tuple[dict[str, str], Scorer]:
    """The file's attributes and a scorer of its trees; the digest checked first."""
    loaded = _LOADED.get(sha256)
    if loaded is None:
        from churn.model.booster import TreeModel
        from churn.scoring.scorer import Scorer

        _check(data, sha256, "the batch model")
        tree = TreeModel.from_bytes(data)
        attributes = {name: tree.booster.attr(_PREFIX + name) or "" for name in _ATTRIBUTES}
        tree.booster.set_attr(**dict.fromkeys((_PREFIX + name for name in _ATTRIBUTES), None))
        attributes = {name: value for name, value in attributes.items() if value}
        threshold = float(attributes.get("threshold", "0.5"))
        rule = attributes.get("label_rule", ">=")
        if rule not in get_args(LabelRule):
            raise ModelIntegrityError(f"The batch model's label rule {rule!r} is not >= or >.")
        scorer = Scorer(tree, threshold, label_rule=cast(LabelRule, rule))
        loaded = _LOADED[sha256] = attributes, scorer
    return loaded


def export(tag: str | None, out: Path) -> BatchModel:
    """Write the store's model as a batch model file; its digest is what jobs name."""
    model = from_store(tag)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(model.data)
    partial.replace(out)
    return model
