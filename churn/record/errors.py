"""The exceptions the package raises, each carrying the HTTP status it maps to.

Here: the tree's root, `ChurnError`, and what the library itself raises about its
input, its model and its configuration. The errors only the HTTP layer raises (a
request's method, path, headers, key or time) extend it in `churn.serving.errors`.
The service turns any `ChurnError` into a JSON response in one place
(`churn.serving.responses.error_response`); nothing else decides status codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
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


def shown(problems: Sequence[Problem], line: Callable[[Problem], str]) -> list[str]:
    """The first SHOWN_PROBLEMS problems, a line each, and how many more there are: the
    command line's and the page's list of problems alike."""
    lines = [line(problem) for problem in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"... and {len(problems) - SHOWN_PROBLEMS} more")
    return lines


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
        return "\n".join([self.message, *(f"  {line}" for line in shown(self.problems, str))])

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


class ConfigurationError(ChurnError):
    """An environment variable the service reads has a value it cannot use."""

    code = "configuration"


class ModelIntegrityError(ChurnError):
    """A model artifact is missing, or its bytes are not the ones that were recorded."""

    code = "model_integrity"


@contextmanager
def naming_file(path: Path) -> Iterator[None]:
    """A `ChurnError` raised within names the file it is about ("The file is empty" of
    which of a command's files?), unless its message names it already."""
    try:
        yield
    except ChurnError as error:
        if path.name not in error.message:
            error.message = f"{path}: {error.message}"
            error.args = (error.message,)
        raise
