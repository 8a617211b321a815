"""The session the job runs on: its own settings only on a session it starts."""

from __future__ import annotations

from pyspark.sql import SparkSession

from churn.spark.session import OWN_SESSION_DEFAULTS, own_session_conf, start

BYTES_PER_BATCH = "spark.sql.execution.arrow.maxBytesPerBatch"


def test_a_session_churn_starts_has_its_defaults(spark: SparkSession) -> None:
    assert spark.conf.get(BYTES_PER_BATCH) == OWN_SESSION_DEFAULTS[BYTES_PER_BATCH]


def test_the_users_conf_wins_over_the_defaults() -> None:
    assert own_session_conf({BYTES_PER_BATCH: "1048576"})[BYTES_PER_BATCH] == "1048576"
    assert own_session_conf(None) == OWN_SESSION_DEFAULTS


def test_a_session_already_running_is_used_as_it_is(spark: SparkSession) -> None:
    """As spark-submit's or a notebook's session: nothing set on it, and not stopped."""
    spark.conf.set(BYTES_PER_BATCH, "12345")
    try:
        session = start(master=None, app_name="another name")
        assert not session.owned
        assert session.spark is spark
        assert spark.conf.get(BYTES_PER_BATCH) == "12345"
        session.stop()
        assert spark.range(1).count() == 1
    finally:
        spark.conf.set(BYTES_PER_BATCH, OWN_SESSION_DEFAULTS[BYTES_PER_BATCH])
