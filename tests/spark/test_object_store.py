"""`churn batch` on an object store: the book read from S3 and the results written to it.

An S3-compatible server on 127.0.0.1 (moto's, from `make s3-emulator`) stands in for a
bank's object store, reached as the README says: `AWS_ENDPOINT_URL` and credentials in
the environment, which the driver, the JVM and the executors' Python workers inherit.
An object store has no folders and no rename (a move is a copy and a delete), so this
is the path a data lake takes that a local disk does not.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from churn.spark.job import BatchSummary
from tests.conftest import ROOT, free_port, run_churn, stop, wait_for
from tests.factories import BANK_COLUMNS, bank_row

EMULATOR = ROOT / "build" / "s3-emulator" / "bin" / "python"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "churn-test",
    "AWS_SECRET_ACCESS_KEY": "churn-test-secret",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment that reaches a fresh S3 server holding one bucket, `bank`."""
    if not EMULATOR.exists():
        pytest.skip("no S3 emulator: `make s3-emulator` (part of `make setup`) installs it")
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(EMULATOR), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    try:
        wait_for(f"{env['AWS_ENDPOINT_URL']}/moto-api/", server, timeout=60)
        _store(env, allow_bucket_creation=True).create_dir("bank")
        yield env
    finally:
        stop(server)


def _store(env: dict[str, str], **options: bool) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=env["AWS_ENDPOINT_URL"], access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"], region=env["AWS_DEFAULT_REGION"], **options,
    )  # fmt: skip


def test_a_book_on_s3_is_scored_into_s3_as_from_disk(
    object_store: dict[str, str],
    book: Path,
    scored: tuple[Path, BatchSummary],
    bundled_store: Path,
) -> None:
    store = _store(object_store)
    pafs.copy_files(str(book), "bank/book/2026-11-29/book.csv", destination_filesystem=store)
    env = {**object_store, "BENTOML_HOME": str(bundled_store)}
    result = run_churn("batch", "score", "s3://bank/book/2026-11-29/",
                       "--out", "s3://bank/scored/2026-11-29", "--master", "local[2]",
                       "--model", str(ROOT / "models" / "churn_prediction_model_v1_0.joblib"),
                       env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr

    local_out, local = scored
    with store.open_input_stream("bank/scored/2026-11-29/summary.json") as summary_file:
        remote = BatchSummary.model_validate_json(summary_file.read())
    assert (remote.rows_in, remote.scored, remote.rejected) == (
        local.rows_in, local.scored, local.rejected,
    )  # fmt: skip
    assert remote.by_geography == local.by_geography
    assert not store.get_file_info(pafs.FileSelector("bank/scored/2026-11-29/_temporary",
                                                     allow_not_found=True))  # fmt: skip

    columns = ["CustomerId", "churn_probability", "prediction", "risk_band"]
    on_s3 = pq.read_table("bank/scored/2026-11-29/scored", filesystem=store, columns=columns)
    on_disk = pq.read_table(local_out / "scored", columns=columns)
    assert on_s3.sort_by("CustomerId").equals(on_disk.sort_by("CustomerId"))
    rejected = pq.read_table("bank/scored/2026-11-29/rejected", filesystem=store)
    assert set(rejected.column("source_file").to_pylist()) == {"s3://bank/book/2026-11-29/book.csv"}
    expected = pq.read_table(local_out / "rejected").drop_columns(["source_file"])
    assert rejected.drop_columns(["source_file"]).sort_by("row").equals(expected.sort_by("row"))

    # The call list from the results on S3, into S3.
    listed = run_churn("batch", "call-list", "s3://bank/scored/2026-11-29", "--top", "3",
                       "--master", "local[2]", env=env)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    with store.open_input_stream("bank/scored/2026-11-29/call-list.csv") as call_list:
        table = pacsv.read_csv(call_list)
    assert table.num_rows == 3


def test_an_object_store_that_does_not_answer_is_one_line(
    object_store: dict[str, str], tmp_path: Path
) -> None:
    env = {**object_store, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens there
    result = run_churn("batch", "score", "s3://bank/book/2026-11-29/",
                       "--out", str(tmp_path / "out"),
                       "--model", str(ROOT / "models" / "churn_prediction_model_v1_0.joblib"),
                       env=env)  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert "s3://bank/book/2026-11-29/" in errors[0]
    assert "Traceback" not in result.stderr


def test_a_record_that_spans_lines_on_s3_is_read_whole(
    object_store: dict[str, str], tmp_path: Path
) -> None:
    """The whole-file pass copies an object to the task's disk for the service's reader."""
    rows = [bank_row(r, 3000 + r, Age=17 if r == 4 else 40) for r in range(1, 6)]
    rows[1] = rows[1].replace("Hargrave", '"Mac\nDonald"')
    store = _store(object_store)
    with store.open_output_stream("bank/spans/book.csv") as target:
        target.write((BANK_COLUMNS + "\n" + "\n".join(rows) + "\n").encode())
    result = run_churn("batch", "score", "s3://bank/spans/book.csv", "--out", str(tmp_path / "out"),
                       "--model", str(ROOT / "models" / "churn_prediction_model_v1_0.joblib"),
                       env=object_store)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("5 rows: 4 scored, 1 rejected")
    [rejected] = pq.read_table(tmp_path / "out" / "rejected").to_pylist()
    assert (rejected["source_file"], rejected["row"]) == ("s3://bank/spans/book.csv", 4)
