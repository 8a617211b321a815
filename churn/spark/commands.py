"""`churn batch` (and `churn-batch`): the Spark commands, built without importing pyspark.

pyspark and the JVM load only when a command runs, so `churn` starts as fast without
them, and a machine without pyspark or Java gets one line saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from churn.record.errors import InvalidInput
from churn.record.schema import CATEGORICAL_FEATURES

if TYPE_CHECKING:
    from churn.spark.output import Sink
    from churn.spark.session import Session

F = TypeVar("F", bound=Callable[..., Any])


def _conf(pairs: tuple[str, ...]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sign, value = pair.partition("=")
        if not sign or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE.", param_hint="--conf")
        conf[key.strip()] = value
    return conf


def _spark_options(command: F) -> F:
    options = [
        click.option(
            "--master", metavar="URL",
            help="When churn starts Spark itself: local[*] (default), spark://HOST:7077, "
            "k8s://https://HOST:443. Under spark-submit, a notebook or Spark Connect "
            "(SPARK_REMOTE), the platform's session is used as it is.",
        ),
        click.option(
            "--conf", "conf_pairs", multiple=True, metavar="KEY=VALUE",
            help="A Spark setting for a session churn starts, as spark-submit's --conf.",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _start(master: str | None, conf: dict[str, str], name: str) -> Session:
    from churn.spark.session import start

    return start(master=master, app_name=name, conf=conf)


def _sink(out: str | None, table: str | None, what: str) -> Sink:
    from churn.spark.output import Sink

    if (out is None) == (table is None):
        raise InvalidInput(f"Name {what}: a folder (DIR) or a table (--table), not both.")
    return Sink(table, table=True) if table else Sink(str(out), table=False)


Command = Callable[..., None]


def batch_group(reports_errors: Callable[[Command], Command]) -> click.Group:
    """The `batch` group; `reports_errors` shows a ChurnError as its message, as elsewhere."""

    @click.group()
    def batch() -> None:
        """Score the whole customer book on Apache Spark (pyspark 3.5 or 4.x, Java 17+)."""

    @batch.command("score")
    @click.argument("input_path", metavar="[INPUT]", required=False)
    @click.option("--table", metavar="NAME", help="Read the book from this table instead.")
    @click.option("--format", "format_", type=click.Choice(["csv", "parquet"]),
                  help="INPUT's format (default: by its name's ending).")  # fmt: skip
    @click.option("--multiline", is_flag=True,
                  help="CSV: quoted cells may hold line breaks (one task per file).")  # fmt: skip
    @click.option("--out", metavar="DIR", help="A Parquet folder, partitioned by run.")
    @click.option("--output-table", metavar="NAME", help="A table, partitioned by run.")
    @click.option("--run-id", metavar="ID",
                  help="The run's partition, replaced by a rerun (default: today).")  # fmt: skip
    @click.option(
        "--model", metavar="PATH_OR_URI",
        help="A model file from `churn batch export-model` (with --model-sha256); "
        "default: the service's model from this machine's store (CHURN_MODEL_TAG).",
    )  # fmt: skip
    @click.option("--model-sha256", metavar="HEX", help="The model file's SHA-256.")
    @click.option("--model-tag", metavar="TAG", help="A store tag instead of the service's.")
    @_spark_options
    @reports_errors
    def score(
        input_path: str | None,
        table: str | None,
        format_: str | None,
        multiline: bool,
        out: str | None,
        output_table: str | None,
        run_id: str | None,
        model: str | None,
        model_sha256: str | None,
        model_tag: str | None,
        master: str | None,
        conf_pairs: tuple[str, ...],
    ) -> None:
        """Score a book (INPUT files, or --table) into DIR (--out) or --output-table.

        Every row is written scored or rejected with the service's reasons (a status
        column) into the run's partition; the run's summary counts them, per Geography.
        """
        from churn.spark import model as batch_model
        from churn.spark.book import Source
        from churn.spark.job import today
        from churn.spark.output import check_run_id

        conf = _conf(conf_pairs)
        if (input_path is None) == (table is None):
            raise InvalidInput("Name the book: INPUT (files) or --table NAME, not both.")
        if (model is None) != (model_sha256 is None):
            raise InvalidInput("--model and --model-sha256 go together: a file and its digest.")
        if model is not None and model_tag is not None:
            raise InvalidInput("--model names a file, --model-tag a store's model: not both.")
        sink = _sink(out, output_table, "where the results go (--out DIR or --output-table)")
        source = (
            Source(table, "table")
            if table
            else Source.of(str(input_path), format_, multiline=multiline)
        )
        run = check_run_id(run_id or today())
        # A model this machine holds is checked before Spark starts; a URI, through Spark.
        chosen = None
        if model is None:
            chosen = batch_model.from_store(model_tag)
        elif batch_model.is_local(model):
            chosen = batch_model.read(None, model, str(model_sha256))
        session = _start(master, conf, "churn batch score")
        try:
            from churn.spark.job import score_book

            if chosen is None:
                chosen = batch_model.read(session.spark, str(model), str(model_sha256))
            summary = score_book(session.spark, source, sink, chosen, run=run)
        finally:
            session.stop()
        click.echo(
            f"{summary.rows_in} rows: {summary.scored} scored, {summary.rejected} rejected, "
            f"in {summary.seconds:.1f} s with {summary.model.tag or summary.model.source} "
            f"(version {summary.model.version}); run {summary.run} in {sink.location}"
        )

    @batch.command("call-list")
    @click.argument("directory", metavar="[DIR]", required=False)
    @click.option("--table", metavar="NAME", help="The scored table instead of DIR.")
    @click.option("--top", type=click.IntRange(min=1), required=True,
                  help="How many customers, overall or per segment.")  # fmt: skip
    @click.option("--by", type=click.Choice(CATEGORICAL_FEATURES),
                  help="The N riskiest per segment.")  # fmt: skip
    @click.option("--run-id", metavar="ID", help="The run (default: the latest finished).")
    @click.option("--model-sha256", metavar="HEX",
                  help="Refuse unless the run was scored by the model of this digest.")  # fmt: skip
    @click.option("--out", metavar="PATH",
                  help="The CSV's folder (default: DIR/_call_list, NAME_call_list).")  # fmt: skip
    @_spark_options
    @reports_errors
    def call_list(
        directory: str | None,
        table: str | None,
        top: int,
        by: str | None,
        run_id: str | None,
        model_sha256: str | None,
        out: str | None,
        master: str | None,
        conf_pairs: tuple[str, ...],
    ) -> None:
        """The riskiest customers of a scored run, each with the top three reasons."""
        conf = _conf(conf_pairs)
        sink = _sink(directory, table, "the scored run (DIR or --table)")
        session = _start(master, conf, "churn batch call-list")
        try:
            from churn.spark.call_list import build_call_list

            result = build_call_list(
                session.spark, sink, top, by=by, out=out, run=run_id, model_sha256=model_sha256
            )
        finally:
            session.stop()
        click.echo(
            f"{result.table.num_rows} customers to call, run {result.summary.run}, "
            f"in {result.path}/run={result.summary.run}"
        )

    @batch.command("export-model")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
                  help="The model file executors score with (booster.ubj).")  # fmt: skip
    @click.option("--model-tag", metavar="TAG",
                  help="A store tag (default: the service's, CHURN_MODEL_TAG).")  # fmt: skip
    @reports_errors
    def export_model(out: Path, model_tag: str | None) -> None:
        """Write the store's model as one file a job names with --model and --model-sha256."""
        from churn.spark.model import export

        exported = export(model_tag, out)
        click.echo(f"{exported.sha256}  {out}")
        click.echo(
            f"model {exported.tag} (version {exported.version}): "
            f"--model {out} --model-sha256 {exported.sha256}",
            err=True,
        )

    return batch
