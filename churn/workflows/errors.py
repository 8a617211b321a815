"""How `churn` and `churn-batch` show a failure: a `ChurnError` as its message and its
problems, not as a traceback. Its own module, so that the batch wheel carries it
without the rest of `churn`'s commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from churn.record.errors import ChurnError

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Show a `ChurnError` as a message and its problems, not as a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ChurnError as error:
            raise click.ClickException(error.report()) from error

    return wrapper  # type: ignore[return-value]
