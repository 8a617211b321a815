"""`churn drift` and `churn evaluate`: model health from files, for schedulers and people.

Both print a JSON summary on stdout. Exit status: 0 when all went well; for `churn
drift`, 1 when a feature or the score drifted, so that a scheduler can act on it, and 3
when the file has too few customers for any statistic (fewer than
drift.MIN_CUSTOMERS: every status is "insufficient"), so that "too few to tell" is not
read as "fine"; 2 when the command could not run (a missing file or column, a model not
in the store, no customer to compare), with a one-line message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from churn.record.errors import ChurnError
from churn.settings import ModelSettings

model_option = click.option(
    "--model", "model_tag", default=lambda: ModelSettings.from_environment().model_tag,
    show_default=ModelSettings.shown_default("model_tag"), help="The model in the BentoML store.",
)  # fmt: skip


# `churn drift`: too few customers in the file for any statistic (module docstring).
INSUFFICIENT = 3


class CouldNotRun(click.ClickException):
    # 1 means "drifted" to a scheduler; a run that could not finish says so with 2.
    exit_code = 2


@click.command()
@click.argument("current", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="Where to write the Evidently HTML report.",
)  # fmt: skip
@model_option
def drift(current: Path, out: Path, model_tag: str) -> None:
    """Compare a CSV or Parquet file of customers with the model's training data.

    Prints PSI and status per feature and for the score, as GET /v2/drift computes
    them, and writes an Evidently report to --out. Exits 1 when something drifted, 3 when
    the file has too few customers to tell (every status "insufficient").
    """
    from churn.model.store import load_model
    from churn.monitoring.drift_report import file_drift, write_evidently_report
    from churn.monitoring.profile import reference_of

    try:
        loaded = load_model(model_tag)
        result, counts, problems = file_drift(current, loaded)
        if result.drift.customers == 0:
            raise CouldNotRun(f"{current.name} has no customer the schema accepts.")
        write_evidently_report(reference_of(loaded.metadata), counts, out)
    except ChurnError as error:
        raise CouldNotRun(error.report()) from error
    for problem in problems:
        click.echo(f"rejected: {problem}", err=True)
    if result.rejected > len(problems):
        click.echo(f"rejected: {result.rejected} rows in all", err=True)
    click.echo(json.dumps({**result.summary(), "report": str(out)}, indent=2))
    if result.drift.drifted:
        sys.exit(1)
    statuses = {f.status for f in [*result.drift.features.values(), result.drift.score]}
    if statuses == {"insufficient"}:
        sys.exit(INSUFFICIENT)


@click.command()
@click.argument("predictions", type=click.Path(exists=True, path_type=Path))
@click.argument("outcomes", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
    help="Folder for evaluation.json, .md, .html and unmatched.csv.",
)  # fmt: skip
@click.option(
    "--customers", type=click.Path(exists=True, path_type=Path),
    help="The file that was scored: each customer's Geography, if neither file has it.",
)  # fmt: skip
@model_option
def evaluate(
    predictions: Path, outcomes: Path, out: Path, customers: Path | None, model_tag: str
) -> None:
    """Join scored customers with their outcomes (CustomerId, Exited) and evaluate.

    PREDICTIONS is /v2/predict-file's answer (CSV or JSON) or the Spark job's Parquet.
    Reports ROC-AUC, precision and recall at the threshold, and calibration, overall
    and per Geography, beside the model card's holdout figures. Rows not used are
    counted, and listed with their reason in unmatched.csv.
    """
    from churn.monitoring.evaluate import evaluate as run
    from churn.monitoring.evaluate import stored_metadata, write_evaluation

    try:
        metadata, tag = stored_metadata(model_tag)
        evaluation, excluded = run(predictions, outcomes, metadata, model=tag, customers=customers)
        written = write_evaluation(evaluation, excluded, out)
    except ChurnError as error:
        raise CouldNotRun(error.report()) from error
    click.echo(json.dumps(evaluation.summary(), indent=2))
    click.echo(f"wrote {', '.join(str(path) for path in written)}", err=True)
    if not evaluation.accounting.matched:
        raise CouldNotRun(f"No customer has both a prediction and an outcome; see {written[-1]}.")
