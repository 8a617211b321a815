"""What a command prints for an error: the message, the first problems, how many more."""

from __future__ import annotations

from churn.record.errors import SHOWN_PROBLEMS, InvalidInput, Problem


def test_a_report_shows_the_first_problems_and_counts_the_rest() -> None:
    problems = [Problem("is not a number", field="Age", row=row) for row in range(1, 26)]

    lines = InvalidInput("25 rows are not valid.", problems).report().splitlines()

    assert lines[0] == "25 rows are not valid."
    assert lines[1] == "  row 1 Age: is not a number"
    assert lines[SHOWN_PROBLEMS] == f"  row {SHOWN_PROBLEMS} Age: is not a number"
    assert lines[SHOWN_PROBLEMS + 1 :] == [f"  ... and {25 - SHOWN_PROBLEMS} more"]


def test_a_report_of_few_problems_shows_them_all_and_no_count() -> None:
    error = InvalidInput("The file lacks columns.", [Problem("missing column", field="Age")])

    assert error.report() == "The file lacks columns.\n  Age: missing column"
    assert InvalidInput("Nothing to score.").report() == "Nothing to score."
