"""Whether a request may reach the routes at all: its API key, its size, its media type.

Decided from the path and headers alone, before a byte of the body is read.
"""

from __future__ import annotations

import hmac

from churn.record.errors import ChurnError, PayloadTooLarge
from churn.serving.errors import LengthRequired, Unauthorized, UnsupportedMediaType

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/", "/docs.json", "/schema.json"})
OPEN_PREFIXES = ("/static_content/", "/assets/")


class Admission:
    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] = (),
        max_body_bytes: int,
        metrics_require_key: bool = False,
        json_only_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.keys = tuple(key.encode() for key in api_keys)
        self.max_body_bytes = max_body_bytes
        self.open_paths = OPEN_PATHS if metrics_require_key else OPEN_PATHS | {"/metrics"}
        # BentoML picks its parser from the Content-Type and answers 500 when a JSON API
        # is sent a form; these routes take JSON only, and say so with a 415.
        self.json_only_paths = json_only_paths

    def refusal(self, path: str, headers: dict[bytes, bytes]) -> ChurnError | None:
        """Why the request is refused before it reaches the app, if it is."""
        try:
            self._authorize(path, headers)
            self._check_length(headers)
            self._check_content_type(path, headers)
        except ChurnError as error:
            # Without its traceback: frames that reach it again would make a cycle.
            return error.with_traceback(None)
        return None

    def _authorize(self, path: str, headers: dict[bytes, bytes]) -> None:
        if not self.keys or path in self.open_paths or path.startswith(OPEN_PREFIXES):
            return
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            raise Unauthorized("This service needs an API key: send 'Authorization: Bearer <key>'.")
        # Compare with every key, always, so that timing does not tell which one is near.
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(token.strip(), key)
        if not matched:
            raise Unauthorized("The API key is not valid.")

    def _check_content_type(self, path: str, headers: dict[bytes, bytes]) -> None:
        if path not in self.json_only_paths:
            return
        media_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip()
        if media_type.lower() != b"application/json":
            raise UnsupportedMediaType(
                f"{path} takes a JSON body (Content-Type: application/json)."
            )

    def _check_length(self, headers: dict[bytes, bytes]) -> None:
        declared = headers.get(b"content-length")
        if declared is None:
            if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                raise LengthRequired("Send the body with a Content-Length header.")
            return
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            megabytes = self.max_body_bytes / (1 << 20)
            raise PayloadTooLarge(
                f"The request body is larger than {megabytes:g} MB "
                "(CHURN_MAX_UPLOAD_MB); split the file or ask for a higher limit."
            )
