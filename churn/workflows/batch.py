"""`churn-batch`: the `churn batch` commands alone, for a wheel on a Spark platform.

spark-submit runs a Python file rather than a command, so this file is also the main
file it is given (the wheel carries it; `python -m churn.workflows.batch --path` prints it):

    spark-submit --master k8s://... --deploy-mode cluster [--conf ...] \
        .../churn/workflows/batch.py score INPUT --out DIR --model URI --model-sha256 HEX

The master and settings are spark-submit's; the arguments are `churn batch`'s.
"""

from __future__ import annotations

import sys

import click

from churn.spark.commands import batch_group
from churn.workflows.errors import reports_errors


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--path"]:
        click.echo(__file__)
        return
    batch_group(reports_errors)(args, prog_name="churn-batch")


if __name__ == "__main__":
    main()
