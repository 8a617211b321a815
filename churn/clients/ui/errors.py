"""Errors, as people read them: one notice for any failure, never a traceback."""

from __future__ import annotations

import re

import streamlit as st

from churn.clients.client import ServiceError, ServiceUnavailable
from churn.clients.ui.text import plain
from churn.record.errors import Problem, shown


def show_error(error: BaseException, timeout: float) -> None:
    """One readable notice for any failure; never a traceback."""
    if isinstance(error, ServiceUnavailable):
        st.error(
            "**The churn service is not answering**: it is down, or it took longer than "
            f"{timeout:g} s. Try again in a moment; if this persists, tell the team that "
            "runs the service.",
            icon=":material/cloud_off:",
        )
        st.caption(plain(error.message))
    elif isinstance(error, ServiceError) and error.status in (401, 403):
        st.error(
            f"**The service refused this page's credentials** (HTTP {error.status}): "
            f"{plain(error.message)}. The page sends the API key in `CHURN_API_KEY`; ask "
            "the team that runs the service for a valid one.",
            icon=":material/lock:",
        )
    elif isinstance(error, ServiceError) and error.is_client_error:
        st.error(
            f"**The service did not accept the input**: {plain(error.message)}",
            icon=":material/block:",
        )
        if error.problems:
            st.markdown("\n".join(f"- {line}" for line in _problem_lines(error.problems)))
    elif isinstance(error, ServiceError):
        st.error(
            f"**The service failed** (HTTP {error.status}): {plain(error.message)}. "
            "Try again; if this persists, tell the team that runs the service.",
            icon=":material/error:",
        )
    else:
        st.error(
            f"**Something went wrong on this page** ({type(error).__name__}: "
            f"{plain(str(error))}). Reload the page; if this persists, tell the team "
            "that runs it.",
            icon=":material/error:",
        )


def _problem_lines(problems: list[Problem]) -> list[str]:
    """The first problems, as the command line shows them (`ChurnError.report`)."""
    return shown(problems, lambda problem: plain(_problem(problem)))


def _problem(problem: Problem) -> str:
    # BentoML names fields by their place in the request ("customer.Age").
    text = str(problem)
    return re.sub(r"^customers?\.(\d+\.)?", "", text)
