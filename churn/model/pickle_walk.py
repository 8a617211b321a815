"""A pickle walked opcode by opcode without running it: what it would have made, described.

`pickletools.genops` reads one opcode at a time; a small stack machine builds a
description of the objects instead of the objects (`Call`: what a call would have made,
unmade), and records which classes and functions the pickle names, the
`_sklearn_version` each scikit-learn estimator recorded in its state, and the raw model
of each XGBoost booster.

joblib's container is not one pickle stream. After each `NumpyArrayWrapper` it writes
the array itself: the raw bytes of a numeric array (after alignment padding, from
joblib 1.2), or a nested pickle for an object array (column names, categories). The
walk reads the wrapper's shape and dtype and steps over the bytes, or walks the nested
pickle. What the walk's findings mean for an import is `churn.model.pickle_scan`'s.
"""

from __future__ import annotations

import io
import math
import pickletools
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from churn.record.errors import ModelIntegrityError

_PYTHON_2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_BOOSTER = "xgboost.core.Booster"


@dataclass(frozen=True)
class Name:
    """A class or function the pickle names (GLOBAL, STACK_GLOBAL, INST)."""

    module: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Call:
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


class Walk:
    """One walk of a stream: `run` returns the description of the pickled object; the
    names, scikit-learn versions and boosters met on the way are kept on the walk."""

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
                stack.append(Call(self._name(module, attribute), tuple(pop_mark())))
            elif name == "OBJ":
                items = pop_mark()
                stack.append(Call(items[0], tuple(items[1:])))
            elif name == "REDUCE":
                args = stack.pop()
                stack.append(_reduced(stack.pop(), args))
            elif name == "NEWOBJ":
                args = stack.pop()
                stack.append(Call(stack.pop(), args))
            elif name == "NEWOBJ_EX":
                del stack[-1]  # keyword arguments
                args = stack.pop()
                stack.append(Call(stack.pop(), args))
            elif name == "BUILD":
                state = stack.pop()
                stack[-1] = self._built(stack[-1], state)
            else:  # PERSID, BINPERSID, EXT1/2/4, NEXT_BUFFER, READONLY_BUFFER
                raise ModelIntegrityError(
                    f"The file uses the pickle opcode {name}, which joblib never writes."
                )
        raise EOFError("the pickle has no STOP")

    def _name(self, module: str, attribute: str) -> Name:
        # Protocols 0-2 write Python 2's module names, which unpickling maps to Python 3's.
        found = Name(_PYTHON_2_MODULES.get(module, module), attribute)
        self.names.add(found.qualified)
        return found

    def _built(self, target: Any, state: Any) -> Any:
        if not isinstance(target, Call):
            return target
        target.state = state
        attributes = state[0] if isinstance(state, tuple) and state else state
        if isinstance(attributes, dict):
            version = attributes.get("_sklearn_version")
            if isinstance(version, str):
                self.sklearn_versions.add(version)
        kind = target.func.qualified if isinstance(target.func, Name) else None
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
    elif isinstance(target, Call):
        target.items.extend(items)
    else:
        raise TypeError(f"cannot append to {type(target).__name__}")


def _set_items(target: Any, items: list[Any]) -> None:
    pairs = zip(items[::2], items[1::2], strict=True)
    if isinstance(target, dict):
        target.update(pairs)
    elif isinstance(target, Call):
        target.items.extend(pairs)
    else:
        raise TypeError(f"cannot set items of {type(target).__name__}")


def _reduced(func: Any, args: Any) -> Any:
    """What REDUCE makes: bytes and bytearrays as values, anything else described."""
    kind = func.qualified if isinstance(func, Name) else None
    if kind == "_codecs.encode" and isinstance(args, tuple) and len(args) == 2:
        return str(args[0]).encode(str(args[1]))  # how protocol 2 writes bytes
    if kind == "builtins.bytearray" and isinstance(args, tuple) and len(args) == 1:
        value = args[0]
        return bytearray(value.encode("latin-1") if isinstance(value, str) else value)
    if kind == "builtins.set" and isinstance(args, tuple):
        return list(args[0]) if args else []
    return Call(func, args)


def _is_object(dtype: Any) -> bool:
    return isinstance(dtype, Call) and str(dtype.args[0]).startswith("O")


def _itemsize(dtype: Any) -> int:
    """The bytes per item of a pickled numpy.dtype: its recorded size, or its code's."""
    if not isinstance(dtype, Call) or not isinstance(dtype.args, tuple):
        raise TypeError("an array without a dtype")
    state = dtype.state
    if isinstance(state, tuple) and len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        return state[5]
    digits = re.sub(r"\D", "", str(dtype.args[0]))
    if not digits:
        raise TypeError(f"an array of dtype {dtype.args[0]!r}")
    return int(digits)
