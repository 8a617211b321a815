"""The request path as the edge reads it: repeated slashes merged, and safe to log."""

from __future__ import annotations

import re
import urllib.parse

from churn.serving.asgi import Scope

PATH_CHARS = 200
_SLASHES = re.compile("//+")
_RAW_SLASHES = re.compile(rb"//+")


def merged_slashes(scope: Scope) -> Scope:
    """The scope with each run of slashes in its path merged into one.

    Merged in `raw_path` (the bytes the client sent), and `path` decoded from the result
    as the server decodes it, so the two still agree. Only slashes sent as slashes are
    merged: an encoded one (`%2F`) is data, and a trailing slash, a dot segment
    (`/./`, `/../`) or a letter's case are left as sent. A copy, as ASGI asks of a
    middleware that changes the scope; most requests have no repeated slash and pass
    as they are.
    """
    raw: bytes | None = scope.get("raw_path")
    if raw is None:  # optional in ASGI; then the decoded path is all there is
        path: str = scope["path"]
        return {**scope, "path": _SLASHES.sub("/", path)} if "//" in path else scope
    if b"//" not in raw:
        return scope
    merged = _RAW_SLASHES.sub(b"/", raw)
    return {**scope, "raw_path": merged, "path": urllib.parse.unquote(merged.decode("latin-1"))}


def shortened(path: str) -> str:
    return path if len(path) <= PATH_CHARS else path[:PATH_CHARS] + "..."


def loggable(path: str) -> str:
    """The path as one log field: the server has already decoded %0A into a line break,
    and a path with one would write a forged line into the access log."""
    if path.isprintable() and " " not in path and len(path) <= PATH_CHARS:
        return path
    return urllib.parse.quote(shortened(path), safe="/.-_~:@!$&'()*+,;=")
