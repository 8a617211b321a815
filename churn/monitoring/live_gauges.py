"""Live drift on /metrics, and the thread that keeps every worker's counts moving.

The figures of /v2/drift go to /metrics as gauges (`churn_drift_psi`, `churn_drift_status`,
`churn_drift_customers`, labelled with the window and its minutes), which each worker's
`Flusher` refreshes every 15 seconds; deploy/prometheus/ has alert rules for them. The
same thread counts the single customers waiting and publishes the worker's counts once a
second.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import TYPE_CHECKING

from churn.monitoring.drift import MIN_CUSTOMERS, STATUS_CODES
from churn.monitoring.live_counts import LiveProfile
from churn.monitoring.live_files import LOG
from churn.record.answers import DriftReport, WindowDrift

if TYPE_CHECKING:
    from prometheus_client import Gauge

FLUSH_SECONDS = 1.0  # how long a single customer may wait to be counted, and published
GAUGE_SECONDS = 15.0


@functools.cache
def gauges() -> tuple[Gauge, Gauge, Gauge]:
    # Imported here, in the worker: see churn.serving.batching.batch_sizes. Every worker sets
    # the same values, from the summed counts; the newest one is reported.
    import prometheus_client

    labels = ("feature", "window", "minutes")
    return (
        prometheus_client.Gauge(
            "churn_drift_psi",
            "Population stability index of a feature (or feature=score, the model's "
            f"score) against the training data; NaN under {MIN_CUSTOMERS} customers.",
            labels,
            multiprocess_mode="mostrecent",
        ),
        prometheus_client.Gauge(
            "churn_drift_status",
            "Drift status: 0 ok (PSI < 0.1), 1 warn (< 0.25), 2 drift, "
            f"-1 too few customers in the window (< {MIN_CUSTOMERS}).",
            labels,
            multiprocess_mode="mostrecent",
        ),
        prometheus_client.Gauge(
            "churn_drift_customers",
            "Customers shown in the window (since_start, or rolling: the last closed window "
            "of `minutes` minutes).",
            ("window", "minutes"),
            multiprocess_mode="mostrecent",
        ),
    )


def set_gauges(report: DriftReport) -> None:
    psi, status, customers = gauges()
    minutes = str(report.rolling.minutes)
    windows: dict[str, WindowDrift] = {"since_start": report, "rolling": report.rolling}
    for window, drift in windows.items():
        customers.labels(window=window, minutes=minutes).set(drift.customers)
        for name, result in [*drift.features.items(), ("score", drift.score)]:
            value = float("nan") if result.psi is None else result.psi
            psi.labels(feature=name, window=window, minutes=minutes).set(value)
            status.labels(feature=name, window=window, minutes=minutes).set(
                STATUS_CODES[result.status]
            )


class Flusher(threading.Thread):
    """Counts the waiting customers and publishes them every second, and sets the gauges
    every 15 seconds. Nothing it reads can make it wait (`WorkerFiles._read_file`)."""

    def __init__(self, live: LiveProfile, model_version: str) -> None:
        super().__init__(name="churn-drift", daemon=True)
        self.live = live
        self.model_version = model_version

    def run(self) -> None:
        gauges_due = 0.0
        while True:
            try:
                self.live.publish()
                if time.monotonic() >= gauges_due:
                    gauges_due = time.monotonic() + GAUGE_SECONDS
                    set_gauges(self.live.report(self.model_version))
            except Exception:  # a count or gauge late must not end the worker
                LOG.exception("could not publish the drift counts or set their gauges")
            time.sleep(FLUSH_SECONDS)
