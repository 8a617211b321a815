"""Every kind of failure reads as a sentence on the page, never as a traceback."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest


def _page(kind: str) -> AppTest:
    def script(kind: str) -> None:
        from churn.clients.client import ServiceError, ServiceUnavailable
        from churn.clients.ui.errors import show_error
        from churn.record.errors import Problem

        errors: dict[str, Exception] = {
            "down": ServiceUnavailable("The churn service at http://x failed: refused"),
            "input": ServiceError(
                422, "2 rows are invalid", [Problem("is out of range", field="Age", row=3)]
            ),
            "many": ServiceError(
                422, "25 rows", [Problem("is not a number", "Age", i) for i in range(25)]
            ),
            "key": ServiceError(401, "A valid API key is required", []),
            "server": ServiceError(500, "internal_error", []),
            "page": KeyError("x"),
        }
        show_error(errors[kind], 7)

    return AppTest.from_function(script, kwargs={"kind": kind}, default_timeout=30).run()


@pytest.mark.parametrize(
    ("kind", "headline", "detail"),
    [
        ("down", "The churn service is not answering", "longer than 7 s"),
        ("input", "The service did not accept the input", "2 rows are invalid"),
        ("key", "refused this page's credentials", "CHURN\\_API\\_KEY"),
        ("server", "The service failed", "HTTP 500"),
        ("page", "Something went wrong on this page", "KeyError"),
    ],
)
def test_errors_read_as_sentences(kind: str, headline: str, detail: str) -> None:
    page = _page(kind)
    assert not page.exception
    (shown,) = page.error
    assert headline in shown.value
    assert detail in shown.value or detail.replace("\\", "") in shown.value


def test_the_rows_of_an_input_error_are_listed() -> None:
    page = _page("input")
    assert page.markdown[0].value == "- row 3 Age: is out of range"


def test_the_page_lists_as_many_problems_as_the_command_line() -> None:
    from churn.record.errors import SHOWN_PROBLEMS, InvalidInput, Problem

    listed = _page("many").markdown[0].value.split("\n")
    assert len(listed) == SHOWN_PROBLEMS + 1
    assert listed[SHOWN_PROBLEMS - 1] == f"- row {SHOWN_PROBLEMS - 1} Age: is not a number"
    # The command line's report of the same problems ends in the same words.
    problems = [Problem("is not a number", "Age", row) for row in range(25)]
    ending = InvalidInput("", problems).report().split("\n")[-1].strip()
    assert listed[-1] == f"- {ending}" == f"- ... and {25 - SHOWN_PROBLEMS} more"


def test_the_services_words_are_shown_as_text() -> None:
    from markdown_it import MarkdownIt

    from churn.clients.ui.text import plain

    hostile = "x\n# Injected [click](javascript:alert(1)) <script>alert(1)</script> :red[x] $x$"
    tokens = MarkdownIt("commonmark").parse(plain(hostile))
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    assert [c.type for c in tokens[1].children or []] == ["text"]
    assert tokens[1].children[0].content == hostile.replace("\n", " ")  # type: ignore[index]
