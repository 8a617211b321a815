"""`churn`, the operator's command line: data, training, import, the store, predictions
through the service, drift and evaluation, Spark, deployment."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from churn.model.artifact import MODELS_DIR
from churn.monitoring.commands import drift, evaluate
from churn.record.errors import naming_file
from churn.settings import ClientSettings
from churn.workflows.errors import reports_errors

_ABOUT_THE_FILE = frozenset({400, 411, 413, 415, 422})  # the service's refusals of an upload


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
@click.option(
    "--store/--no-store", default=True, show_default=True,
    help="Save the model into the BentoML model store as well.",
)  # fmt: skip
@reports_errors
def train(data_path: Path, out: Path, seed: int, model_version: str, store: bool) -> None:
    """Train the churn pipeline, write the joblib model with its metadata (for data
    scientists), and save its booster and metadata into the BentoML model store."""
    from churn.workflows.training import train as run_training

    result = run_training(
        data_path, out, seed=seed, version=model_version,
        progress=lambda message: click.echo(f"[train] {message}", err=True),
    )  # fmt: skip
    metrics = result.metadata.metrics
    assert metrics is not None  # training measures them
    click.echo(
        f"model {result.model_path} (sha256 {result.metadata.artifact_sha256})\n"
        f"threshold {result.metadata.threshold}\n"
        f"roc_auc {metrics.roc_auc:.4f} pr_auc {metrics.pr_auc:.4f} "
        f"precision {metrics.precision:.4f} recall {metrics.recall:.4f} "
        f"f1 {metrics.f1:.4f} brier {metrics.brier:.4f}"
    )
    if store:
        from churn.model.store import save_once

        stored, new = save_once(result.tree, result.metadata)
        click.echo(f"{'stored' if new else 'already in the store:'} {stored.tag}")


@main.command("import-model")
@click.argument("model_path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--sha256", metavar="HEX",
    help="The file's SHA-256, from whoever made it; needed unless the project records it "
    "(the bundled model).",
)  # fmt: skip
@click.option(
    "--requirements", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The requirements.txt the model was made with: its == pins instead of the versions "
    "read from the pickle.",
)  # fmt: skip
@click.option(
    "--threshold", type=float,
    help="Label churn at or above this probability (default: what the pipeline's predict() "
    "did, above 0.5).",
)  # fmt: skip
@click.option(
    "--version", "model_version", help="The model's version (default: from the file name, "
    "_v1_0 gives 1.0).",
)  # fmt: skip
@click.option(
    "--reference-data", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Customers in the public layout (Exited if known): the parity check's customers, "
    "the drift reference and the model card.",
)  # fmt: skip
@click.option(
    "--wheelhouse", type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Build the model's environment from this folder of wheels, without a registry.",
)  # fmt: skip
@click.option(
    "--env-cache", type=click.Path(file_okay=False, path_type=Path),
    help="Where the environments are kept (default: CHURN_IMPORT_ENV_CACHE, else "
    "~/.cache/churn/import-envs).",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Import again even if this file is in the store.")
@reports_errors
def import_model(
    model_path: Path,
    sha256: str | None,
    requirements: Path | None,
    threshold: float | None,
    model_version: str | None,
    reference_data: Path | None,
    wheelhouse: Path | None,
    env_cache: Path | None,
    force: bool,
) -> None:
    """Import a joblib pipeline, made here or elsewhere, into the BentoML model store.

    Its SHA-256 is checked first; it is unpickled only in a separate process, in an
    environment of the libraries that made it; the store keeps XGBoost's own model, not
    a pickle, once it answered as the pipeline did (README: "Bring your own model").
    """
    from churn.settings import ImportSettings
    from churn.workflows.importing import import_model as run_import

    result = run_import(
        model_path, sha256=sha256, requirements=requirements, threshold=threshold,
        version=model_version, reference_data=reference_data, force=force,
        env_cache=env_cache or ImportSettings.from_environment().import_env_cache,
        wheelhouse=wheelhouse, progress=lambda message: click.echo(f"[import] {message}", err=True),
    )  # fmt: skip
    if result.imported:
        click.echo(f"imported {result.model.tag}")
    else:
        click.echo(f"already in the store: {result.model.tag} (--force imports it again)")


@main.command("migrate-store")
@reports_errors
def migrate_store() -> None:
    """Rewrite store entries of the older form (a pickle beside the booster file) as
    today's: the booster file and the metadata, no pickle. Nothing is unpickled."""
    from churn.model.store import migrate

    done = migrate()
    for entry in done:
        if entry.new is None:
            click.echo(f"left {entry.old}: {entry.reason}", err=True)
        else:
            click.echo(f"migrated {entry.old} -> {entry.new} (no pickle)")
    if not done:
        click.echo("the model store holds no entry of an older form")


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
    from churn.clients.client import ChurnClient, ServiceError

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

        try:
            summary = client.predict_file(
                csv_path, target, output_format=output_format, progress=advance
            )
        except ServiceError as error:
            if error.status not in _ABOUT_THE_FILE:
                raise
            with naming_file(csv_path):
                raise
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
