"""The exceptions the package raises, each carrying the HTTP status it maps to.

The service turns any `ChurnError` into a JSON response in one place
(`churn.serving.routes.error_response`); nothing else decides status codes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

# A person at a terminal reads the first problems of a file; the rest are counted.
SHOWN_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (row, field) and what is allowed."""

    message: str
    field: str | None = None
    row: int | None = None
    allowed: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    def reason(self) -> str:
        """The problem without its row number: for reports that already show the row."""
        allowed = f" (allowed: {self.allowed})" if self.allowed else ""
        field = f"{self.field}: " if self.field else ""
        return f"{field}{self.message}{allowed}"

    def __str__(self) -> str:
        if self.row is None:
            return self.reason()
        return (
            f"row {self.row} {self.reason()}" if self.field else f"row {self.row}: {self.reason()}"
        )


class ChurnError(Exception):
    """Base of every error this package raises on purpose."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def headers(self) -> dict[str, str]:
        """Response headers HTTP requires with this status."""
        return {}

    def report(self) -> str:
        """The message and the first problems, a line each: what a command prints."""
        lines = [self.message, *(f"  {problem}" for problem in self.problems[:SHOWN_PROBLEMS])]
        if len(self.problems) > SHOWN_PROBLEMS:
            lines.append(f"  ... and {len(self.problems) - SHOWN_PROBLEMS} more")
        return "\n".join(lines)

    def as_json(self, max_problems: int = 100) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.problems:
            body["problems"] = [p.as_json() for p in self.problems[:max_problems]]
            body["problem_count"] = len(self.problems)
        return body


class InvalidInput(ChurnError):
    """The request is well formed but its values break the customer schema."""

    status_code = 422
    code = "invalid_input"


class BadRequest(ChurnError):
    """The request cannot be read at all: not JSON, not a CSV, no file."""

    status_code = 400
    code = "bad_request"


class PayloadTooLarge(ChurnError):
    status_code = 413
    code = "payload_too_large"


class LengthRequired(ChurnError):
    """A body sent without Content-Length, whose size could only be learnt by reading it."""

    status_code = 411
    code = "length_required"


class UnsupportedMediaType(ChurnError):
    status_code = 415
    code = "unsupported_media_type"


class Unauthorized(ChurnError):
    status_code = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class NotFound(ChurnError):
    status_code = 404
    code = "not_found"


class NotAcceptable(ChurnError):
    """The Accept header admits none of the media types the route can answer in."""

    status_code = 406
    code = "not_acceptable"


class MethodNotAllowed(ChurnError):
    status_code = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed_methods: str) -> None:
        super().__init__(message)
        self.allowed_methods = allowed_methods

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allowed_methods}


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


class ConfigurationError(ChurnError):
    """An environment variable the service reads has a value it cannot use."""

    code = "configuration"


class ModelIntegrityError(ChurnError):
    """A model artifact is missing, or its bytes are not the ones that were recorded."""

    code = "model_integrity"
