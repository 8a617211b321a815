"""`churn batch`: the Spark commands, built for `churn.clients.cli` without importing pyspark.

pyspark and the JVM load only when a command runs, so `churn` starts as fast without
them, and a machine without the `spark` extra or Java gets one line saying so.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import click

from churn.record.schema import CATEGORICAL_FEATURES

if TYPE_CHECKING:
    from churn.spark.model import DriverModel

F = TypeVar("F", bound=Callable[..., Any])


def _conf(pairs: tuple[str, ...]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sign, value = pair.partition("=")
        if not sign or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE.", param_hint="--conf")
        conf[key.strip()] = value
    return conf


def _prepare(model: str | None) -> DriverModel:
    from churn.spark.model import resolve

    importlib.import_module("churn.spark.job")
    return resolve(model)


def _spark_options(command: F) -> F:
    options = [
        click.option(
            "--master", metavar="URL",
            help="Spark master: local[*] (default, or spark-submit's), spark://HOST:7077, "
            "k8s://https://HOST:443.",
        ),
        click.option(
            "--conf", "conf_pairs", multiple=True, metavar="KEY=VALUE",
            help="A Spark setting, as spark-submit's --conf; repeatable.",
        ),
        click.option(
            "--spark-log", type=click.Choice(["off", "error", "warn", "info"]), default="off",
            show_default=True, help="Spark's own log on stderr (failures are reported anyway).",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


Command = Callable[..., None]


def batch_group(reports_errors: Callable[[Command], Command]) -> click.Group:
    """The `batch` group; `reports_errors` shows a ChurnError as its message, as elsewhere."""

    @click.group()
    def batch() -> None:
        """Score the whole customer book on Apache Spark (the `spark` extra, Java 17+)."""

    @batch.command("score")
    @click.argument("input_path", metavar="INPUT")
    @click.option("--out", required=True, metavar="DIR",
                  help="Where scored/, rejected/ and summary.json go.")  # fmt: skip
    @click.option(
        "--model", metavar="TAG_OR_FILE",
        help="A BentoML store tag or a .joblib file with its metadata "
        "(default: the service's, CHURN_MODEL_TAG).",
    )  # fmt: skip
    @click.option("--overwrite", is_flag=True, help="Replace what DIR holds.")
    @_spark_options
    @reports_errors
    def score(
        input_path: str,
        out: str,
        model: str | None,
        overwrite: bool,
        master: str | None,
        conf_pairs: tuple[str, ...],
        spark_log: str,
    ) -> None:
        """Score a CSV or Parquet file, or a folder of them, into DIR.

        Every row is scored (DIR/scored) or rejected with the service's reasons
        (DIR/rejected); DIR/summary.json counts them, per Geography too.
        """
        from churn.spark.session import require_pyspark

        conf = _conf(conf_pairs)
        require_pyspark()
        from churn.spark.model import check
        from churn.spark.session import finish, start

        check(model)  # a model that fails its checksum is refused before Spark starts
        # The driver prepares the model for the executors and imports the job's modules
        # (pandas, Arrow) while Spark's JVM starts.
        with ThreadPoolExecutor(1, thread_name_prefix="churn-prepare") as pool:
            preparing = pool.submit(_prepare, model)
            context = start(master=master, app_name="churn batch score", conf=conf,
                          log_level=spark_log, record_classes=True)  # fmt: skip
            try:
                chosen = preparing.result()
                from churn.spark.job import score_book

                summary = score_book(context, input_path, out, chosen, overwrite=overwrite)
            finally:
                finish(context, exiting=True)
        click.echo(
            f"{summary.rows_in} rows: {summary.scored} scored, {summary.rejected} rejected, "
            f"in {summary.seconds:.1f} s with {summary.model.tag} (version "
            f"{summary.model.version}); results in {out}"
        )

    @batch.command("call-list")
    @click.argument("directory", metavar="DIR")
    @click.option("--top", type=click.IntRange(min=1), required=True,
                  help="How many customers, overall or per segment.")  # fmt: skip
    @click.option("--by", type=click.Choice(CATEGORICAL_FEATURES),
                  help="The N riskiest per segment.")  # fmt: skip
    @click.option("--out", metavar="FILE", help="The CSV (default: DIR/call-list.csv).")
    @_spark_options
    @reports_errors
    def call_list(
        directory: str,
        top: int,
        by: str | None,
        out: str | None,
        master: str | None,
        conf_pairs: tuple[str, ...],
        spark_log: str,
    ) -> None:
        """The riskiest customers of a scored DIR, each with the top three reasons."""
        from churn.spark.session import finish, require_pyspark, start

        conf = _conf(conf_pairs)
        require_pyspark()
        from churn.spark.call_list import build_call_list

        context = start(master=master, app_name="churn batch call-list", conf=conf,
                      log_level=spark_log, record_classes=True)  # fmt: skip
        try:
            result = build_call_list(context, directory, top, by=by, out=out)
        finally:
            finish(context, exiting=True)
        click.echo(f"{result.table.num_rows} customers to call, in {result.path}")

    return batch
