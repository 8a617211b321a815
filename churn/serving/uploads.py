"""Reading a CSV upload: one file in one multipart field, saved to a temporary file."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import anyio
from fastapi import Request
from starlette.datastructures import UploadFile

from churn.record.errors import BadRequest

_COPY_CHUNK = 1 << 20


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
    try:
        form = await request.form()
    except Exception as error:  # Starlette raises several types for a malformed body.
        raise BadRequest(f"The multipart body cannot be read: {error}") from None
    try:
        upload = _the_one_file(form.multi_items(), field)
        descriptor, name = tempfile.mkstemp(prefix="churn-upload-", suffix=".csv")
        path = Path(name)
        try:
            with os.fdopen(descriptor, "wb") as target:
                await anyio.to_thread.run_sync(shutil.copyfileobj, upload.file, target, _COPY_CHUNK)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    finally:
        await form.close()
    fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    return path, fields


def _the_one_file(items: list[tuple[str, UploadFile | str]], field: str) -> UploadFile:
    files = [(key, value) for key, value in items if isinstance(value, UploadFile)]
    elsewhere = sorted({key for key, _ in files if key != field})
    if elsewhere:
        names = ", ".join(repr(key) for key in elsewhere)
        raise BadRequest(f"Send the CSV in the field {field!r} only; files came in {names}.")
    if not files:
        raise BadRequest(f"The upload has no file in the field {field!r}.")
    if len(files) > 1:
        raise BadRequest(
            f"The upload has {len(files)} files in the field {field!r}; send one file a request."
        )
    texts = Counter(key for key, value in items if isinstance(value, str))
    repeated = sorted(key for key, count in texts.items() if count > 1)
    if repeated:
        names = ", ".join(repr(key) for key in repeated)
        raise BadRequest(f"Send each form field once; {names} came more than once.")
    return files[0][1]
