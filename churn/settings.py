"""The service's configuration: environment variables only, read once at start-up.

| variable | default | meaning |
| --- | --- | --- |
| CHURN_WORKERS | 2 | server worker processes (one per core is right for this model) |
| CHURN_TIMEOUT_SECONDS | 120 | request timeout; a 1,000,000-row file takes a few seconds |
| CHURN_MAX_BATCH_SIZE | 512 | batching: most customers gathered from many requests (at least 2) |
| CHURN_MAX_LATENCY_MS | 10000 | batching: a queued request waiting this long gets a 503 |
| CHURN_MODEL_TAG | churn_model:latest | which model in the store the service packs and loads |
| CHURN_LOG_LEVEL | INFO | level of the churn.* loggers (the access log is INFO) |
| CHURN_LOG_FLUSH_MS | 500 | longest an INFO line waits to be written with others (0: at once) |
| CHURN_API_KEYS | (unset) | comma-separated API keys; unset means no authentication |
| CHURN_METRICS_REQUIRE_KEY | false | whether /metrics needs a key too |
| CHURN_MAX_UPLOAD_MB | 256 | largest request body; a 1,000,000-row CSV is about 90 MB |
| CHURN_MAX_ROWS | 2000000 | most rows in one uploaded file |
| CHURN_KEEPALIVE_REQUESTS | 100 | mean requests per keep-alive connection (churn.serving.edge) |
| CHURN_FAST_PATH | true | answer /v1/customer, /v2/predict first (churn.serving.fastpath) |

Without CHURN_API_KEYS anyone who can reach the port can score customers and read the
model's metadata: run it only on a network where that is acceptable.

The port is BentoML's own: `bentoml serve --port` or BENTOML_PORT (default 3000).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from churn.record.errors import ConfigurationError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _TRUE | _FALSE:
        raise ConfigurationError(f"{name}={raw!r} is not true or false.")
    return raw in _TRUE


def _log_level() -> str:
    level = os.environ.get("CHURN_LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ConfigurationError(
            f"CHURN_LOG_LEVEL={level!r} is not a level; use one of {', '.join(LOG_LEVELS)}."
        )
    return level


@dataclass(frozen=True)
class Settings:
    workers: int
    timeout_seconds: int
    max_batch_size: int
    max_latency_ms: int
    model_tag: str
    log_level: str
    log_flush_ms: int
    api_keys: tuple[str, ...]
    metrics_require_key: bool
    max_upload_bytes: int
    max_rows: int
    keepalive_requests: int
    fast_path: bool

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(
            workers=_int("CHURN_WORKERS", 2),
            timeout_seconds=_int("CHURN_TIMEOUT_SECONDS", 120),
            # One would be no batching at all (churn.serving.batching).
            max_batch_size=_int("CHURN_MAX_BATCH_SIZE", 512, minimum=2),
            max_latency_ms=_int("CHURN_MAX_LATENCY_MS", 10_000),
            model_tag=os.environ.get("CHURN_MODEL_TAG", "churn_model:latest"),
            log_level=_log_level(),
            log_flush_ms=_int("CHURN_LOG_FLUSH_MS", 500, minimum=0),
            api_keys=tuple(
                key.strip()
                for key in os.environ.get("CHURN_API_KEYS", "").split(",")
                if key.strip()
            ),
            metrics_require_key=_flag("CHURN_METRICS_REQUIRE_KEY", default=False),
            max_upload_bytes=_int("CHURN_MAX_UPLOAD_MB", 256) << 20,
            max_rows=_int("CHURN_MAX_ROWS", 2_000_000),
            keepalive_requests=_int("CHURN_KEEPALIVE_REQUESTS", 100),
            fast_path=_flag("CHURN_FAST_PATH", default=True),
        )
