"""`churn`: the operational tasks (make data, train, import, predict, export) as commands."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from churn.model.artifact import MODELS_DIR
from churn.monitoring.commands import drift, evaluate
from churn.record.errors import ChurnError
from churn.settings import ClientSettings

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


@click.group()
def main() -> None:
    """Bank customer churn: data, training, the model store and predictions."""


@main.group()
def data() -> None:
    """Customer data sets."""


@data.command("synth")
@click.option("--rows", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=42, show_default=True)
def synth(rows: int, out: Path, seed: int) -> None:
    """Write a synthetic customer CSV in the public bank layout."""
    from churn.model.synth import write_synthetic_csv

    write_synthetic_csv(out, rows, seed)
    click.echo(f"wrote {rows} synthetic customers to {out}")


@main.command()
@click.option(
    "--data", "data_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True, help="Training CSV in the public bank layout, with an Exited column.",
)  # fmt: skip
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=MODELS_DIR,
    show_default=True,
)  # fmt: skip
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--version", "model_version", default="1.0", show_default=True)
@reports_errors
def train(data_path: Path, out: Path, seed: int, model_version: str) -> None:
    """Train the churn pipeline and write the joblib model with its metadata."""
    from churn.model.training import train as run_training

    result = run_training(
        data_path, out, seed=seed, version=model_version,
        progress=lambda message: click.echo(f"[train] {message}", err=True),
    )  # fmt: skip
    metrics = result.metadata.metrics
    click.echo(
        f"model {result.model_path}\n"
        f"threshold {result.metadata.threshold}\n"
        f"roc_auc {metrics.roc_auc:.4f} pr_auc {metrics.pr_auc:.4f} "
        f"precision {metrics.precision:.4f} recall {metrics.recall:.4f} "
        f"f1 {metrics.f1:.4f} brier {metrics.brier:.4f}"
    )


@main.command("import-model")
@click.argument("model_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--metadata", "metadata_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Metadata JSON (default: beside the model, NAME.metadata.json).",
)  # fmt: skip
@click.option("--sha256", help="Expected SHA-256 of the file (it must also match the metadata).")
@click.option("--force", is_flag=True, help="Import again even if this file is in the store.")
@reports_errors
def import_model(
    model_path: Path, metadata_path: Path | None, sha256: str | None, force: bool
) -> None:
    """Verify a joblib pipeline's checksum, then save it into the BentoML model store."""
    from churn.model.store import import_model as run_import

    model, imported = run_import(
        model_path, metadata_path=metadata_path, sha256=sha256, force=force
    )
    click.echo(f"{'imported' if imported else 'already in the store:'} {model.tag}")


@main.command()
@click.argument(
    "csv_path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--url", show_default=ClientSettings.shown_default("api_url"), help="The churn service.",
)  # fmt: skip
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the results (default: FILE with .predictions.csv/.json).",
)  # fmt: skip
@click.option("--format", "output_format", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)  # fmt: skip
@click.option("--timeout", type=float, default=60, show_default=True, help="Seconds to connect.")
@reports_errors
def predict(
    csv_path: Path, url: str | None, out: Path | None, output_format: str, timeout: float
) -> None:
    """Score a customer CSV through a running churn service.

    Every row is accounted for: valid rows are scored, invalid rows are written back
    with their row number and reasons. The API key, if the service wants one, comes
    from CHURN_API_KEY.
    """
    from churn.clients.client import ChurnClient

    target = out or csv_path.with_suffix(f".predictions.{output_format}")
    size = csv_path.stat().st_size
    with (
        ChurnClient(url, timeout=timeout) as client,
        click.progressbar(length=size, label="uploading", file=sys.stderr) as bar,
    ):
        sent = 0

        def advance(done: int, _total: int) -> None:
            nonlocal sent
            bar.update(done - sent)
            sent = done

        summary = client.predict_file(
            csv_path, target, output_format=output_format, progress=advance
        )
    click.echo(
        f"{summary.rows_in} rows: {summary.rows_scored} scored, "
        f"{summary.rows_rejected} rejected, {summary.predicted_churn} predicted to churn "
        f"(model {summary.model_version}); results in {target}"
    )


# --- Hugging Face Spaces (deploy/README.md) ------------------------------------------
@main.group()
def spaces() -> None:
    """Hugging Face Spaces: the Bento as a Docker Space, and its upload."""


@spaces.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--bento", "bento_tag", default="churn:latest", show_default=True,
    help="The Bento to export, from the local BentoML store (make bento).",
)  # fmt: skip
@click.option("--title", default="Churn", show_default=True, help="The Space's title.")
@reports_errors
def spaces_export(directory: Path, bento_tag: str, title: str) -> None:
    """Write a Docker Space folder: the Bento with its model, a Dockerfile, a README."""
    from churn.deploy.spaces import export_space

    folder = export_space(directory, bento_tag, title=title)
    click.echo(
        f"wrote a Docker Space for {folder.bento} ({', '.join(folder.models)}) to {directory}"
    )


@spaces.command("push")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--space", "space_id", required=True, help="The Space, as OWNER/NAME.")
@click.option("--private", is_flag=True, help="Create the Space as private.")
@click.option("--message", help="The commit message.")
@reports_errors
def spaces_push(directory: Path, space_id: str, private: bool, message: str | None) -> None:
    """Upload a Space folder to Hugging Face (token from HF_TOKEN, never printed)."""
    from churn.deploy.spaces import push_space

    url = push_space(directory, space_id, private=private, message=message)
    click.echo(f"uploaded {directory} to the Space {space_id}: {url}")


# --- Apache Spark (churn/spark; README: "Score the whole book on Spark") ---------------
from churn.spark.commands import batch_group  # noqa: E402  (click only; pyspark loads on use)

main.add_command(batch_group(reports_errors))

# --- Model health (churn.monitoring.commands; README "Model health") ------------------
main.add_command(drift)
main.add_command(evaluate)
