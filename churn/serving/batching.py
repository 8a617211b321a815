"""Batching of `/v2/predict`: requests wait for each other only while the worker is busy.

One `Batcher` per worker scores every `/v2/predict` request, from the fast path
(churn.serving.fastpath) and from the BentoML API (service.py) alike.

Why not BentoML's adaptive dispatcher (`CorkDispatcher`, bentoml._internal.marshal),
which batched `/v2/predict` until issue 17. It fits `duration = o_a * n + o_b` to its
last 50 batches and learns `wait`, the mean time the first request of a batch spent
queued; polling every millisecond, it holds a request until `n * (age + 1 ms + o_a)`
passes `0.95 * wait`. That wait feeds itself:
- The chunks of a bulk request (cut at `max_batch_size`) queue one behind another and
  keep the bulk's arrival time, so their waits are whole scoring times: after a bulk
  request of 30,000 customers the learnt wait is tens to hundreds of milliseconds.
- Every lone request is then held for 0.95 of it, plus what the hold overshoots (the
  1 ms tick, a busy loop), and that is the next sample. The wait is refitted at most
  every 5 s and falls by at most 5% each time, and not at all once 5% of it is less
  than the overshoot: it settles at about 20 times the overshoot.
- No setting changes that: its one bound on a hold is `max_latency_ms`, reached by
  shedding requests with 503s.
Measured (issue 17, benchmarks/README.md "Latency of single requests"): one client's
single-customer request took 0.6 ms before three bulk requests and 79 ms (p50) after,
and stayed there; on a loaded machine, 559 ms.

The design here has no timer and nothing learnt. Scoring runs on the event loop (a
batch costs well under a millisecond; a thread hop per batch costs more), so the loop
itself is the resource requests queue for:
- A request that finds the batcher idle is scored at once, alone: there is nobody to
  wait for, and it records a queue wait of exactly zero.
- Scoring holds the loop, so the requests read while it ran reach the batcher in the
  same turn of the loop. From a score until the loop comes round again the batcher is
  busy, and a request that arrives then joins the queue (as does every request while
  one is queued).
- When the loop comes round, the queue is scored as one batch of whole requests, up to
  `max_batch_size` customers (what does not fit waits one more turn), which keeps the
  batcher busy for one more turn. A turn that finds the queue empty makes it idle.
  This is "batch while busy" (continuous batching): under load every turn scores what
  arrived during the last one; when load stops the service is idle at the next turn.
- A request of `max_batch_size` customers or more is already a batch: it is scored at
  once, as sent, never split into the queue.
- A queued request that has waited `max_latency_ms` by the time its batch is formed is
  answered 503 (`Overloaded`, with Retry-After) instead of being scored: shedding it
  lets the queue catch up.
The batch sizes and each request's queue wait are histograms on /metrics.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from churn.record.answers import Prediction
from churn.record.schema import Customer
from churn.serving.errors import Overloaded

if TYPE_CHECKING:
    from prometheus_client import Histogram

Score = Callable[[list[Customer]], list[Prediction]]


@functools.cache
def batch_sizes() -> Histogram:
    # Imported here, once the worker runs: prometheus_client settles on single- or
    # multi-process mode when first imported, and a BentoML worker sets
    # PROMETHEUS_MULTIPROC_DIR only after importing service.py (bentoml/metrics.py).
    import prometheus_client

    # Scoring a batch takes well under a millisecond, so a batch rarely holds more than
    # a worker's concurrent clients; the buckets resolve that range.
    return prometheus_client.Histogram(
        "churn_predict_batch_size",
        "Customers scored in one call by /v2/predict's batching.",
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, float("inf")),
    )


@functools.cache
def queue_waits() -> Histogram:
    import prometheus_client  # see batch_sizes

    # 0: scored at once. A queued request waits for the loop to come round, a fraction
    # of a millisecond to a few under load; anything past that is something holding the
    # loop (a bulk request, a large body being parsed).
    return prometheus_client.Histogram(
        "churn_predict_queue_wait_seconds",
        "Time each /v2/predict request waited in the batching queue before its batch "
        "was scored or it was shed (0: scored at once).",
        buckets=(0, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf")),
    )  # fmt: skip


@dataclass
class _Queued:
    customers: list[Customer]
    since: float
    answer: asyncio.Future[list[Prediction]] = field(repr=False)


class Batcher:
    def __init__(self, score: Score, *, max_batch_size: int, max_latency_ms: int) -> None:
        self.score = score
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000
        self.batch_sizes = batch_sizes()
        self.queue_waits = queue_waits()
        self._queue: collections.deque[_Queued] = collections.deque()
        self._busy = False

    async def __call__(self, customers: list[Customer]) -> list[Prediction]:
        if not customers:
            return []
        if not self._busy or len(customers) >= self.max_batch_size:
            self._hold_turn()
            self.queue_waits.observe(0)
            return self._score(customers)
        queued = _Queued(customers, time.perf_counter(), asyncio.get_running_loop().create_future())
        self._queue.append(queued)
        return await queued.answer

    def _hold_turn(self) -> None:
        """Busy until the loop comes round, when `_turn` scores what arrived meanwhile."""
        if not self._busy:
            self._busy = True
            asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        if not self._queue:
            self._busy = False
            return
        try:
            self._score_queued()
        finally:
            # After the answers: the requests just scored resume, and send them, before
            # the next batch holds the loop.
            asyncio.get_running_loop().call_soon(self._turn)

    def _score_queued(self) -> None:
        now = time.perf_counter()
        batch: list[_Queued] = []
        size = 0
        while self._queue:
            queued = self._queue[0]
            if batch and size + len(queued.customers) > self.max_batch_size:
                break
            self._queue.popleft()
            if queued.answer.done():  # cancelled: the request timed out or its client left
                continue
            waited = now - queued.since
            self.queue_waits.observe(waited)
            if waited >= self.max_latency:
                queued.answer.set_exception(_shed())
                continue
            batch.append(queued)
            size += len(queued.customers)
        if not batch:
            return
        try:
            predictions = self._score([c for queued in batch for c in queued.customers])
        except Exception as error:  # each request fails as it would scored alone
            for queued in batch:
                queued.answer.set_exception(error)
            return
        start = 0
        for queued in batch:
            end = start + len(queued.customers)
            queued.answer.set_result(predictions[start:end])
            start = end

    def _score(self, customers: list[Customer]) -> list[Prediction]:
        self.batch_sizes.observe(len(customers))
        return self.score(customers)


def _shed() -> Overloaded:
    return Overloaded(
        "The service is too busy to answer within its latency budget "
        "(CHURN_MAX_LATENCY_MS); try again shortly."
    )
