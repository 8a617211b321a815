from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pytest

from churn.serving.logs import FORMAT, BatchedStreamHandler
from tests.conftest import wait_until

Logged = tuple[logging.Logger, io.StringIO, BatchedStreamHandler]


@pytest.fixture
def logged() -> Iterator[Logged]:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, flush_seconds=0.2, max_lines=5)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger(f"churn.test.{time.monotonic_ns()}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)
    handler.close()


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_info_lines_wait_for_the_interval_then_arrive_in_order(logged: Logged) -> None:
    logger, stream, _ = logged
    for n in range(3):
        logger.info("request %d", n)
    assert lines(stream) == []
    wait_until(lambda: len(lines(stream)) == 3, "three lines", timeout=5)
    assert [line.rsplit("] ", 1)[1] for line in lines(stream)] == [
        "request 0",
        "request 1",
        "request 2",
    ]
    assert all("[INFO] [churn.test." in line for line in lines(stream))


def test_a_warning_is_written_at_once_after_what_came_before(logged: Logged) -> None:
    logger, stream, _ = logged
    logger.info("first")
    logger.warning("trouble")
    assert [line.rsplit("] ", 1)[1] for line in lines(stream)] == ["first", "trouble"]


def test_a_full_batch_is_written_without_waiting(logged: Logged) -> None:
    logger, stream, _ = logged
    for n in range(4):
        logger.info("line %d", n)
    assert lines(stream) == []
    logger.info("line 4")
    assert len(lines(stream)) == 5


def test_closing_writes_what_is_waiting(logged: Logged) -> None:
    logger, stream, handler = logged
    logger.info("last words")
    handler.close()
    assert lines(stream)[-1].endswith("last words")
