"""Reading a CSV upload: one file in one multipart field, written to a temporary file as
it arrives (python-multipart, Starlette's own parser, driven directly)."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Literal

import anyio
from fastapi import Request

# Starlette's own form parser; a dependency of BentoML (and of any form on FastAPI).
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from churn.record.errors import BadRequest

COPY_CHUNK = 1 << 20


@asynccontextmanager
async def saved_upload(
    request: Request, field: str = "file"
) -> AsyncIterator[tuple[Path, dict[str, str]]]:
    """`save_upload`'s file and fields, the file deleted on leaving."""
    path, fields = await save_upload(request, field)
    try:
        yield path, fields
    finally:
        path.unlink(missing_ok=True)


async def save_upload(request: Request, field: str = "file") -> tuple[Path, dict[str, str]]:
    """The one file in the multipart field `field`, saved to a temporary file the caller
    must delete, and the form's text fields.

    A form that would make the route pick one of several values (two files, a file in
    another field, a text field sent twice) is refused: scoring one and dropping the
    rest would lose customers without a word.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise BadRequest(f"Send the CSV as a multipart/form-data upload in the field {field!r}.")
    form = _Form(field)
    try:
        await form.read(content_type, request.stream())
        _check_form(form.files, [name for name, _ in form.texts], field)
    except BaseException:
        form.discard()
        raise
    assert form.path is not None  # _check_form: one file came in `field`
    return form.path, dict(form.texts)


class _Form:
    """A multipart body read as it arrives, with the file in `field` written straight to
    a temporary file (a megabyte at a time, in a worker thread), text fields kept and
    other files only counted. Starlette's `request.form()` spools a file in memory and
    then on disk, a worker thread for every 64 KB, and leaves a copy to make: three
    times the CPU of this for a 48 MB upload (benchmarks/README.md)."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.files: list[str] = []  # the field of each file part, in order
        self.texts: list[tuple[str, str]] = []
        self.path: Path | None = None
        self._target: IO[bytes] | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._header = bytearray()
        self._value = bytearray()
        self._disposition = b""
        self._name = ""
        self._kind: Literal["kept", "dropped", "text"] = "text"
        self._text = bytearray()
        self._parts = 0

    async def read(self, content_type: str, body: AsyncIterator[bytes]) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadRequest("The multipart body cannot be read: its boundary is missing.")
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )
        try:
            async for chunk in body:
                parser.write(chunk)
                if self._pending_bytes >= COPY_CHUNK:
                    await anyio.to_thread.run_sync(self._flush)
            parser.finalize()
        except (FormParserError, _FormError) as error:
            raise BadRequest(f"The multipart body cannot be read: {error}") from None
        except ClientDisconnect:
            raise BadRequest("The multipart body cannot be read: the client went away.") from None
        await anyio.to_thread.run_sync(self._flush)
        if self._target is not None:
            self._target.close()

    def discard(self) -> None:
        if self._target is not None:
            self._target.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _begin(self) -> None:
        self._disposition = b""
        self._text = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = bytes(self._value)
        self._header, self._value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        self._parts += 1
        if self._parts > _MAX_PARTS:
            raise _FormError(f"it has more than {_MAX_PARTS} parts")
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _FormError('a part has no "name" in its Content-Disposition')
        self._name = options[b"name"].decode("utf-8", errors="replace")
        if b"filename" not in options:
            self._kind = "text"
            return
        self._kind = "kept" if self._name == self.field and self.path is None else "dropped"
        if self._kind == "kept":
            descriptor, name = tempfile.mkstemp(prefix="churn-upload-", suffix=".csv")
            self.path = Path(name)
            self._target = os.fdopen(descriptor, "wb")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "kept":
            self._pending.append(data[start:end])
            self._pending_bytes += end - start
        elif self._kind == "text":
            if len(self._text) + end - start > _MAX_TEXT_FIELD:
                raise _FormError(f"the field {self._name!r} is longer than 1 MB")
            self._text += data[start:end]

    def _end(self) -> None:
        # A part counts once its closing boundary came: a body cut short in the file
        # has no file, as in Starlette's parser, rather than a file missing its last rows.
        if self._kind == "text":
            self.texts.append((self._name, self._text.decode("utf-8", errors="replace")))
        else:
            self.files.append(self._name)

    def _flush(self) -> None:
        if self._target is not None and self._pending:
            self._target.writelines(self._pending)
        self._pending.clear()
        self._pending_bytes = 0


class _FormError(Exception):
    """A multipart body that python-multipart parses but this service cannot use."""


_MAX_TEXT_FIELD = 1 << 20  # Starlette's limit for a text part, kept
_MAX_PARTS = 1000  # Starlette's limit of files (and of fields): a form of tiny parts is refused


def _check_form(files: list[str], texts: list[str], field: str) -> None:
    elsewhere = sorted({name for name in files if name != field})
    if elsewhere:
        names = ", ".join(repr(name) for name in elsewhere)
        raise BadRequest(f"Send the CSV in the field {field!r} only; files came in {names}.")
    if not files:
        raise BadRequest(f"The upload has no file in the field {field!r}.")
    if len(files) > 1:
        raise BadRequest(
            f"The upload has {len(files)} files in the field {field!r}; send one file a request."
        )
    repeated = sorted(name for name, count in Counter(texts).items() if count > 1)
    if repeated:
        names = ", ".join(repr(name) for name in repeated)
        raise BadRequest(f"Send each form field once; {names} came more than once.")
