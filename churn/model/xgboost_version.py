"""XGBoost's version, read from a booster's raw model without XGBoost.

A pickled booster holds its model as XGBoost wrote it: UBJSON from XGBoost 1.6 (read
here by a small reader of the format), or the binary model followed by its JSON
configuration (1.0 to 1.5). Either records the version that wrote it.
"""

from __future__ import annotations

import re
import struct
from typing import Any, ClassVar

from churn.record.errors import ModelIntegrityError


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
