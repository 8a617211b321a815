"""Stages of a pipeline that overlap: a producer a few items ahead of its consumer, a
consumer a few calls behind its caller, each in a thread of its own.

Arrow, NumPy and XGBoost do their work without Python's lock, so stages in threads
overlap on two cores; a few items in flight keep memory bounded.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Generator, Iterator
from queue import Full, Queue
from typing import ParamSpec, TypeVar, cast

T = TypeVar("T")
P = ParamSpec("P")
_AHEAD = 2  # batches a stage may run ahead of the next: memory stays a few batches


def ahead(items: Generator[T]) -> Generator[T]:
    """`items`, produced in a thread of their own a few ahead of the consumer.

    An error in the producer is raised in the consumer; a consumer that stops early
    (an error, too many rows) stops the producer, which closes `items`.
    """
    queue: Queue[tuple[T | None, BaseException | None, bool]] = Queue(maxsize=_AHEAD)
    stop = threading.Event()

    def put(entry: tuple[T | None, BaseException | None, bool]) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.05)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        with contextlib.closing(items):
            try:
                for item in items:
                    if not put((item, None, False)):
                        return
            except BaseException as error:  # raised again in the consumer
                put((None, error, True))
                return
        put((None, None, True))

    thread = threading.Thread(target=produce, name="churn-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error, done = queue.get()
            if error is not None:
                raise error
            if done:
                return
            yield cast(T, item)
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def behind(consume: Callable[P, None]) -> Iterator[Callable[P, None]]:
    """`consume`, called in a thread of its own a few calls behind the caller. On
    leaving, every call handed over has been made; an error in `consume` is raised in
    the caller, at the next call or on leaving."""
    queue: Queue[tuple[Callable[[], None] | None]] = Queue(maxsize=_AHEAD)
    failed: list[BaseException] = []

    def run() -> None:
        while (call := queue.get()[0]) is not None:
            if not failed:
                try:
                    call()
                except BaseException as error:  # raised again in the caller
                    failed.append(error)

    def hand_over(*args: P.args, **kwargs: P.kwargs) -> None:
        if failed:
            raise failed[0]
        queue.put((functools.partial(consume, *args, **kwargs),))

    thread = threading.Thread(target=run, name="churn-write-behind", daemon=True)
    thread.start()
    try:
        yield hand_over
    finally:
        queue.put((None,))
        thread.join()
    if failed:
        raise failed[0]
