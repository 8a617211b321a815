"""What a joblib file holds and which libraries made it, read without running it.

Unpickling runs code, so nothing here calls `pickle.load`. The bytes are walked opcode
by opcode (`churn.model.pickle_walk`), which describes the objects instead of making
them: which classes and functions the pickle names, the `_sklearn_version` each
scikit-learn estimator recorded in its state, and the raw model of each XGBoost
booster, whose own header carries XGBoost's version (`churn.model.xgboost_version`).
A compressed file (zlib, gzip, bz2, xz/lzma: joblib's `compress=`) is decompressed
first, up to `MAX_PICKLE_BYTES`.

The names a pickle may call are limited to scikit-learn's, XGBoost's, NumPy's, SciPy's,
pandas' and joblib's (and a few of Python's own containers). That is not what makes
a file safe to load (its checksum against an anchor is); it refuses, before any
environment is built, what a pipeline of those libraries never holds: a custom
function or class, or a call to the operating system.
"""

from __future__ import annotations

import bz2
import io
import lzma
import re
import zlib
from dataclasses import dataclass
from typing import Any

from churn.model.pickle_walk import Call, Name, Walk
from churn.model.xgboost_version import xgboost_version_of
from churn.record.errors import ModelIntegrityError

MAX_PICKLE_BYTES = 2 << 30  # decompressed; the department's model is 100 KB
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?([.+-]?[A-Za-z0-9.]*)$")
# Module prefixes and single names a scikit-learn + XGBoost pipeline's pickle names.
_LIBRARIES = ("sklearn", "xgboost", "numpy", "scipy", "pandas")
_ALLOWED_NAMES = frozenset(
    {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "builtins.bytearray",
        "builtins.slice",
        "builtins.set",
        "builtins.frozenset",
        "builtins.complex",
        "builtins.object",
        "copyreg._reconstructor",
        "_codecs.encode",
        "collections.OrderedDict",
        "collections.defaultdict",
        "datetime.datetime",
        "datetime.date",
        "datetime.timedelta",
        "datetime.timezone",
    }
)
# Magic numbers of the compressions joblib writes (joblib.compressor).
_COMPRESSIONS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x78", "zlib"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"ZF", "joblib's pre-0.10 zlib"),
)


@dataclass(frozen=True)
class PickleContents:
    """What the walk found."""

    compression: str | None
    top: str | None  # the class of the object the file holds, "module.Name"
    sklearn_versions: frozenset[str]
    xgboost_versions: frozenset[str]
    # 2 when the pickle names numpy._core (NumPy 2 wrote it), 1 for numpy.core.
    numpy_major: int | None
    names: frozenset[str]  # every "module.name" the pickle would import

    @property
    def sklearn_version(self) -> str:
        return _one("scikit-learn", self.sklearn_versions, "no estimator records _sklearn_version")

    @property
    def xgboost_version(self) -> str:
        return _one("XGBoost", self.xgboost_versions, "it holds no XGBoost booster")


def _one(library: str, versions: frozenset[str], why: str) -> str:
    if not versions:
        raise ModelIntegrityError(
            f"The file does not say which {library} made it ({why}); give the versions "
            "with --requirements (a requirements.txt with == pins)."
        )
    if len(versions) > 1:
        raise ModelIntegrityError(
            f"The file's parts were made by different {library} versions "
            f"({', '.join(sorted(versions))}); give the one to load it with in --requirements."
        )
    return next(iter(versions))


def scan(data: bytes) -> PickleContents:
    """Walk a joblib file's bytes; `ModelIntegrityError` for what cannot be read."""
    compression, stream = decompressed(data)
    walk = Walk(io.BytesIO(stream))
    top = walk.run()
    foreign = sorted(name for name in walk.names if not _allowed(name))
    if foreign:
        raise ModelIntegrityError(
            "The file names code from outside scikit-learn, XGBoost, NumPy, SciPy, pandas "
            f"and joblib: {', '.join(foreign)}. A custom function or class (a "
            "FunctionTransformer's func, a class from the notebook) cannot be exported "
            "into the service, and a scikit-learn pipeline never calls the others."
        )
    versions = frozenset(_checked_version("scikit-learn", v) for v in walk.sklearn_versions)
    xgboost_versions = frozenset(xgboost_version_of(raw) for raw in walk.boosters)
    numpy_major = None
    if any(name.startswith("numpy._core.") for name in walk.names):
        numpy_major = 2
    elif any(name.startswith("numpy.core.") for name in walk.names):
        numpy_major = 1
    return PickleContents(
        compression=compression,
        top=top.func.qualified if isinstance(top, Call) and isinstance(top.func, Name) else None,
        sklearn_versions=versions,
        xgboost_versions=xgboost_versions,
        numpy_major=numpy_major,
        names=frozenset(walk.names),
    )


def _allowed(name: str) -> bool:
    return name in _ALLOWED_NAMES or name.split(".")[0] in _LIBRARIES


def _checked_version(library: str, version: str) -> str:
    if not _VERSION.match(version):
        raise ModelIntegrityError(f"The file records {library} version {version!r}, not a version.")
    return version


def decompressed(data: bytes) -> tuple[str | None, bytes]:
    """The pickle stream of a joblib file, and the compression it had, if any."""
    if data[:1] == b"\x80" or not data:  # a pickle's PROTO opcode
        return None, data
    for magic, name in _COMPRESSIONS:
        if data.startswith(magic):
            return name, _decompress(name, data)
    # Protocol 0 and 1 pickles have no PROTO opcode; the walk tells if this is one.
    return None, data


def _decompress(name: str, data: bytes) -> bytes:
    decompressor: Any
    if name in ("gzip", "zlib"):
        decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # either header
    elif name == "bz2":
        decompressor = bz2.BZ2Decompressor()
    elif name in ("xz", "lzma"):
        decompressor = lzma.LZMADecompressor()
    else:
        raise ModelIntegrityError(
            f"The file is compressed with {name}, which this importer cannot read without "
            "running it; save it again with joblib.dump(model, path) or compress=3 (zlib)."
        )
    try:
        out = decompressor.decompress(data, MAX_PICKLE_BYTES + 1)
    except (zlib.error, OSError, lzma.LZMAError, EOFError) as error:
        raise ModelIntegrityError(f"The file's {name} compression is damaged: {error}") from None
    if len(out) > MAX_PICKLE_BYTES:
        raise ModelIntegrityError(
            f"The file decompresses to more than {MAX_PICKLE_BYTES >> 30} GiB; not a model."
        )
    return bytes(out)
