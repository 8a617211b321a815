"""The errors only the HTTP layer raises: about a request as HTTP, never about customers.

Its key (401), path or method (404, 405), headers (406, 411, 415) or time (503, 504).
They extend the one tree under `churn.record.errors.ChurnError`, each with its status
and the headers HTTP requires with it, and are answered as every other error is, by
`churn.serving.responses.error_response`.
"""

from __future__ import annotations

from churn.record.errors import ChurnError


class Unauthorized(ChurnError):
    status_code = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class NotFound(ChurnError):
    status_code = 404
    code = "not_found"


class MethodNotAllowed(ChurnError):
    status_code = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed_methods: str) -> None:
        super().__init__(message)
        self.allowed_methods = allowed_methods

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allowed_methods}


class NotAcceptable(ChurnError):
    """The Accept header admits none of the media types the route can answer in."""

    status_code = 406
    code = "not_acceptable"


class LengthRequired(ChurnError):
    """A body sent without Content-Length, whose size could only be learnt by reading it."""

    status_code = 411
    code = "length_required"


class UnsupportedMediaType(ChurnError):
    status_code = 415
    code = "unsupported_media_type"


class Overloaded(ChurnError):
    """Adaptive batching could not score the request within CHURN_MAX_LATENCY_MS."""

    status_code = 503
    code = "overloaded"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class TimedOut(ChurnError):
    """No answer had started within the request time limit (CHURN_TIMEOUT_SECONDS)."""

    status_code = 504
    code = "timeout"
