"""The service's configuration: environment variables only, read once at start-up.

| variable | default | meaning |
| --- | --- | --- |
| CHURN_WORKERS | 2 | server worker processes (one per core is right for this model) |
| CHURN_TIMEOUT_SECONDS | 120 | request timeout; a 1,000,000-row file takes a few seconds |
| CHURN_MAX_BATCH_SIZE | 512 | adaptive batching: most customers scored in one call |
| CHURN_MAX_LATENCY_MS | 10000 | adaptive batching: latency budget before BentoML sheds load |
| CHURN_MODEL_TAG | churn_model:latest | which model in the store the service packs and loads |
| CHURN_LOG_LEVEL | INFO | level of the churn.* loggers |

The port is BentoML's own: `bentoml serve --port` or BENTOML_PORT (default 3000).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from churn.errors import ChurnError


class ConfigurationError(ChurnError):
    code = "configuration"


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, not {value}.")
    return value


@dataclass(frozen=True)
class Settings:
    workers: int
    timeout_seconds: int
    max_batch_size: int
    max_latency_ms: int
    model_tag: str
    log_level: str

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(
            workers=_int("CHURN_WORKERS", 2),
            timeout_seconds=_int("CHURN_TIMEOUT_SECONDS", 120),
            max_batch_size=_int("CHURN_MAX_BATCH_SIZE", 512),
            max_latency_ms=_int("CHURN_MAX_LATENCY_MS", 10_000),
            model_tag=os.environ.get("CHURN_MODEL_TAG", "churn_model:latest"),
            log_level=os.environ.get("CHURN_LOG_LEVEL", "INFO").upper(),
        )
