"""Configuration, from environment variables only, each read in one place.

The service (`ServiceSettings`, read once at start-up):

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
| CHURN_KEEPALIVE_REQUESTS | 100 | mean requests per keep-alive connection (serving.edge) |
| CHURN_FAST_PATH | true | answer /v1/customer, /v2/predict first (serving.fastpath) |
| CHURN_BULK_THREADS | 2 | XGBoost threads for 10,000 customers or more in one request (not files) |
| CHURN_DRIFT_PROFILING | true | count scored customers into the live drift profile |
| CHURN_DRIFT_WINDOW_MINUTES | 60 | drift window, clock minutes, shown when closed (up to a week) |

Without CHURN_API_KEYS anyone who can reach the port can score customers and read the
model's metadata: run it only on a network where that is acceptable.
The port is BentoML's own: `bentoml serve --port` or BENTOML_PORT (default 3000).

The clients (`ClientSettings`: the Python client, the CLI and the UI):

| variable | default | meaning |
| --- | --- | --- |
| CHURN_API_URL | http://127.0.0.1:3000 | the service's root URL |
| CHURN_API_KEY | (unset) | the key sent as `Authorization: Bearer <key>` |
| CHURN_API_TIMEOUT | 30 | seconds the UI waits for each answer |
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from churn.record.errors import ConfigurationError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_URL = "http://127.0.0.1:3000"
_PREFIX = "CHURN_"


class _FromEnvironment(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, frozen=True, extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @classmethod
    def from_environment(cls) -> Self:
        """The settings, or a `ConfigurationError` naming the variable and what it allows."""
        try:
            return cls()
        except ValidationError as error:
            raise _named(error) from None


class ServiceSettings(_FromEnvironment):
    workers: int = Field(2, ge=1)
    timeout_seconds: int = Field(120, ge=1)
    # One would be no batching at all (serving.batching).
    max_batch_size: int = Field(512, ge=2)
    max_latency_ms: int = Field(10_000, ge=1)
    model_tag: str = "churn_model:latest"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_flush_ms: int = Field(500, ge=0)
    api_keys: Annotated[tuple[str, ...], NoDecode] = ()
    metrics_require_key: bool = False
    max_upload_mb: int = Field(256, ge=1)
    max_rows: int = Field(2_000_000, ge=1)
    keepalive_requests: int = Field(100, ge=1)
    fast_path: bool = True
    bulk_threads: int = Field(2, ge=1)
    drift_profiling: bool = True
    drift_window_minutes: int = Field(60, ge=1, le=7 * 24 * 60)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb << 20


class ClientSettings(_FromEnvironment):
    api_url: str = DEFAULT_URL
    api_key: str | None = None
    api_timeout: float = Field(30.0, gt=0)

    @field_validator("api_url", mode="after")
    @classmethod
    def _without_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/") or DEFAULT_URL

    @field_validator("api_key", mode="after")
    @classmethod
    def _unset_if_empty(cls, value: str | None) -> str | None:
        return value or None


_SAYS = {
    "int_parsing": "is not a whole number.",
    "int_from_float": "is not a whole number.",
    "float_parsing": "is not a number.",
    "bool_parsing": "is not true or false.",
    "literal_error": f"is not a level; use one of {', '.join(LOG_LEVELS)}.",
}


def _named(error: ValidationError) -> ConfigurationError:
    """Pydantic's first error as one sentence naming the variable (never a key's value)."""
    detail = error.errors(include_url=False)[0]
    name = _PREFIX + str(detail["loc"][0]).upper() if detail["loc"] else _PREFIX
    value = detail.get("input")
    if detail["type"] == "less_than_equal":
        bound = detail.get("ctx", {}).get("le")
        return ConfigurationError(f"{name} may be at most {bound}, not {value}.")
    if detail["type"] in ("greater_than_equal", "greater_than"):
        bound = detail.get("ctx", {}).get("ge", detail.get("ctx", {}).get("gt"))
        word = "at least" if detail["type"] == "greater_than_equal" else "more than"
        return ConfigurationError(f"{name} must be {word} {bound}, not {value}.")
    says = _SAYS.get(detail["type"], f"is not valid: {detail['msg']}.")
    shown = "(hidden)" if name.endswith(("_KEY", "_KEYS")) else repr(value)
    return ConfigurationError(f"{name}={shown} {says}")
