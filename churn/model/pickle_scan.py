"""What a joblib file holds and which libraries made it, read without running it.

Unpickling runs code, so nothing here calls `pickle.load`. The bytes are walked opcode
by opcode (`pickletools.genops`) by a small stack machine that builds a description
of the objects instead of the objects: which classes and functions the pickle names,
the `_sklearn_version` each scikit-learn estimator recorded in its state, and the raw
model of each XGBoost booster, whose own header carries XGBoost's version.

joblib's container is not one pickle stream. After each `NumpyArrayWrapper` it writes
the array itself: the raw bytes of a numeric array (after alignment padding, from
joblib 1.2), or a nested pickle for an object array (column names, categories). The
walk reads the wrapper's shape and dtype and steps over the bytes, or walks the nested
pickle. A compressed file (zlib, gzip, bz2, xz/lzma: joblib's `compress=`) is
decompressed first, up to `MAX_PICKLE_BYTES`.

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
import math
import pickletools
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
_PYTHON_2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_BOOSTER = "xgboost.core.Booster"
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
    walk = _Walk(io.BytesIO(stream))
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
        top=top.func.qualified if isinstance(top, _Call) and isinstance(top.func, _Name) else None,
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


# The walk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Name:
    module: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class _Call:
    """What a call in the pickle would have made (REDUCE, NEWOBJ, INST, OBJ), unmade."""

    func: Any
    args: Any
    state: Any = None
    items: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class _Array:
    """A numpy array joblib wrote after its wrapper: only its shape is kept."""

    shape: tuple[int, ...]
    values: Any = None  # an object array's nested pickle, walked


_MARK = object()


class _Walk:
    def __init__(self, stream: io.BytesIO) -> None:
        self.stream = stream
        self.names: set[str] = set()
        self.sklearn_versions: set[str] = set()
        self.boosters: list[bytes] = []

    def run(self) -> Any:
        try:
            return self._pickle()
        except ModelIntegrityError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, struct.error, EOFError) as error:
            raise ModelIntegrityError(
                f"The file is not a joblib or pickle file this importer can read ({error})."
            ) from None

    def _pickle(self) -> Any:
        """One pickle stream, from the stream's position to its STOP."""
        stack: list[Any] = []
        marks: list[int] = []
        memo: dict[int, Any] = {}

        def pop_mark() -> list[Any]:
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            return items

        for opcode, arg, _ in _ops(self.stream):
            name = opcode.name
            if name == "STOP":
                return stack.pop()
            if name in ("PROTO", "FRAME"):
                continue
            if name == "MARK":
                marks.append(len(stack))
            elif name in _CONSTANTS:
                stack.append(_CONSTANTS[name])
            elif name in ("EMPTY_LIST", "EMPTY_SET"):
                stack.append([])
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name in _LITERALS:
                stack.append(bytearray(arg) if name == "BYTEARRAY8" else arg)
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[int(arg)])
            elif name == "POP":
                stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
                items = pop_mark()
                stack.append(_collection(name, items))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                size = int(name[-1])
                items = stack[-size:]
                del stack[-size:]
                stack.append(tuple(items))
            elif name in ("APPEND", "APPENDS"):
                items = [stack.pop()] if name == "APPEND" else pop_mark()
                _extend(stack[-1], items)
            elif name in ("SETITEM", "SETITEMS"):
                items = stack[-2:] if name == "SETITEM" else pop_mark()
                if name == "SETITEM":
                    del stack[-2:]
                _set_items(stack[-1], items)
            elif name == "ADDITEMS":
                _extend(stack[-1], pop_mark())
            elif name == "GLOBAL":
                module, _, attribute = str(arg).partition(" ")
                stack.append(self._name(module, attribute))
            elif name == "STACK_GLOBAL":
                attribute, module = stack.pop(), stack.pop()
                stack.append(self._name(str(module), str(attribute)))
            elif name == "INST":
                module, _, attribute = str(arg).partition(" ")
                stack.append(_Call(self._name(module, attribute), tuple(pop_mark())))
            elif name == "OBJ":
                items = pop_mark()
                stack.append(_Call(items[0], tuple(items[1:])))
            elif name == "REDUCE":
                args = stack.pop()
                stack.append(_reduced(stack.pop(), args))
            elif name == "NEWOBJ":
                args = stack.pop()
                stack.append(_Call(stack.pop(), args))
            elif name == "NEWOBJ_EX":
                del stack[-1]  # keyword arguments
                args = stack.pop()
                stack.append(_Call(stack.pop(), args))
            elif name == "BUILD":
                state = stack.pop()
                stack[-1] = self._built(stack[-1], state)
            else:  # PERSID, BINPERSID, EXT1/2/4, NEXT_BUFFER, READONLY_BUFFER
                raise ModelIntegrityError(
                    f"The file uses the pickle opcode {name}, which joblib never writes."
                )
        raise EOFError("the pickle has no STOP")

    def _name(self, module: str, attribute: str) -> _Name:
        # Protocols 0-2 write Python 2's module names, which unpickling maps to Python 3's.
        found = _Name(_PYTHON_2_MODULES.get(module, module), attribute)
        self.names.add(found.qualified)
        return found

    def _built(self, target: Any, state: Any) -> Any:
        if not isinstance(target, _Call):
            return target
        target.state = state
        attributes = state[0] if isinstance(state, tuple) and state else state
        if isinstance(attributes, dict):
            version = attributes.get("_sklearn_version")
            if isinstance(version, str):
                self.sklearn_versions.add(version)
        kind = target.func.qualified if isinstance(target.func, _Name) else None
        if kind == _BOOSTER and isinstance(attributes, dict):
            raw = attributes.get("handle")
            if isinstance(raw, bytes | bytearray):
                self.boosters.append(bytes(raw))
        if kind == _WRAPPER and isinstance(attributes, dict):
            return self._array(attributes)
        return target

    def _array(self, wrapper: dict[str, Any]) -> _Array:
        """Step over (or walk) the array joblib wrote after this wrapper."""
        shape = tuple(int(n) for n in wrapper["shape"])
        dtype = wrapper["dtype"]
        if _is_object(dtype):
            return _Array(shape, self._pickle())
        if wrapper.get("allow_mmap"):
            padding = self.stream.read(1)
            self.stream.seek(int.from_bytes(padding, "little"), io.SEEK_CUR)
        size = math.prod(shape) * _itemsize(dtype)
        start = self.stream.tell()
        if start + size > len(self.stream.getbuffer()):
            raise EOFError("an array runs past the end of the file")
        self.stream.seek(size, io.SEEK_CUR)
        return _Array(shape)


def _ops(stream: io.BytesIO) -> Iterator[tuple[Any, Any, int | None]]:
    # genops reads one opcode at a time from the stream's position, so the walk may step
    # over joblib's array bytes between two opcodes.
    return pickletools.genops(stream)


_CONSTANTS: dict[str, Any] = {
    "NONE": None,
    "NEWTRUE": True,
    "NEWFALSE": False,
    "EMPTY_TUPLE": (),
}
_LITERALS = frozenset(
    {
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
        "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
    }
)  # fmt: skip


def _collection(kind: str, items: list[Any]) -> Any:
    if kind == "TUPLE":
        return tuple(items)
    if kind == "LIST":
        return list(items)
    if kind == "FROZENSET":
        return tuple(items)
    return dict(zip(items[::2], items[1::2], strict=True))


def _extend(target: Any, items: list[Any]) -> None:
    if isinstance(target, list):
        target.extend(items)
    elif isinstance(target, _Call):
        target.items.extend(items)
    else:
        raise TypeError(f"cannot append to {type(target).__name__}")


def _set_items(target: Any, items: list[Any]) -> None:
    pairs = zip(items[::2], items[1::2], strict=True)
    if isinstance(target, dict):
        target.update(pairs)
    elif isinstance(target, _Call):
        target.items.extend(pairs)
    else:
        raise TypeError(f"cannot set items of {type(target).__name__}")


def _reduced(func: Any, args: Any) -> Any:
    """What REDUCE makes: bytes and bytearrays as values, anything else described."""
    kind = func.qualified if isinstance(func, _Name) else None
    if kind == "_codecs.encode" and isinstance(args, tuple) and len(args) == 2:
        return str(args[0]).encode(str(args[1]))  # how protocol 2 writes bytes
    if kind == "builtins.bytearray" and isinstance(args, tuple) and len(args) == 1:
        value = args[0]
        return bytearray(value.encode("latin-1") if isinstance(value, str) else value)
    if kind == "builtins.set" and isinstance(args, tuple):
        return list(args[0]) if args else []
    return _Call(func, args)


def _is_object(dtype: Any) -> bool:
    return isinstance(dtype, _Call) and str(dtype.args[0]).startswith("O")


def _itemsize(dtype: Any) -> int:
    """The bytes per item of a pickled numpy.dtype: its recorded size, or its code's."""
    if not isinstance(dtype, _Call) or not isinstance(dtype.args, tuple):
        raise TypeError("an array without a dtype")
    state = dtype.state
    if isinstance(state, tuple) and len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        return state[5]
    digits = re.sub(r"\D", "", str(dtype.args[0]))
    if not digits:
        raise TypeError(f"an array of dtype {dtype.args[0]!r}")
    return int(digits)


# XGBoost's version, from its raw model ------------------------------------------------


def xgboost_version_of(raw: bytes) -> str:
    """The version in a pickled booster's model: UBJSON (XGBoost 1.6 and later), or the
    JSON configuration after the binary model (1.0 to 1.5)."""
    found: list[int] | None = None
    if raw.startswith(b"{"):
        try:
            found = _ubjson_version(raw)
        except (ValueError, IndexError, struct.error):
            found = None
    if found is None:
        match = re.search(rb'"version"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]', raw)
        found = [int(part) for part in match.groups()] if match else None
    if found is None or len(found) != 3:
        raise ModelIntegrityError(
            "The file's XGBoost model records no version: it was saved by XGBoost before "
            "1.0, which this importer does not support; give the version with --requirements."
        )
    return ".".join(str(part) for part in found)


def _ubjson_version(raw: bytes) -> list[int] | None:
    """The "version" array of an XGBoost UBJSON document: the model's, else the config's."""
    document = _UBJSON(raw).value()
    if not isinstance(document, dict):
        return None
    for where in (document.get("Model"), document, document.get("Config")):
        if isinstance(where, dict) and isinstance(where.get("version"), list):
            return [int(part) for part in where["version"]]
    return None


class _UBJSON:
    """A reader of UBJSON (Draft 12, as XGBoost writes it) that builds plain values."""

    _NUMBERS: ClassVar[dict[bytes, tuple[str, int]]] = {
        b"i": (">b", 1), b"U": (">B", 1), b"I": (">h", 2), b"l": (">i", 4),
        b"L": (">q", 8), b"d": (">f", 4), b"D": (">d", 8),
    }  # fmt: skip

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def _take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise ValueError("UBJSON ends early")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def _marker(self) -> bytes:
        marker = self._take(1)
        while marker == b"N":  # no-op
            marker = self._take(1)
        return marker

    def value(self, marker: bytes | None = None) -> Any:
        marker = marker or self._marker()
        if marker in self._NUMBERS:
            form, size = self._NUMBERS[marker]
            return struct.unpack(form, self._take(size))[0]
        if marker == b"S" or marker == b"H":
            return self._take(self._count()).decode("utf-8", "replace")
        if marker == b"C":
            return self._take(1).decode("latin-1")
        if marker in (b"T", b"F", b"Z"):
            return {b"T": True, b"F": False, b"Z": None}[marker]
        if marker == b"[":
            return self._array()
        if marker == b"{":
            return self._object()
        raise ValueError(f"UBJSON marker {marker!r}")

    def _count(self) -> int:
        count = self.value()
        if not isinstance(count, int) or count < 0:
            raise ValueError("a UBJSON length is not a count")
        return count

    def _header(self) -> tuple[bytes | None, int | None]:
        kind = count = None
        if self.data[self.at : self.at + 1] == b"$":
            self.at += 1
            kind = self._take(1)
        if self.data[self.at : self.at + 1] == b"#":
            self.at += 1
            count = self._count()
        return kind, count

    def _array(self) -> list[Any]:
        kind, count = self._header()
        if kind in self._NUMBERS and count is not None:
            form, size = self._NUMBERS[kind]
            return list(struct.unpack(f">{count}{form[1]}", self._take(count * size)))
        items: list[Any] = []
        while count is None or len(items) < count:
            if count is None and self.data[self.at : self.at + 1] == b"]":
                self.at += 1
                break
            items.append(self.value(kind))
        return items

    def _object(self) -> dict[str, Any]:
        kind, count = self._header()
        items: dict[str, Any] = {}
        while count is None or len(items) < count:
            if count is None and self.data[self.at : self.at + 1] == b"}":
                self.at += 1
                break
            key = self._take(self._count()).decode("utf-8", "replace")
            items[key] = self.value(kind)
        return items
