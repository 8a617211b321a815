"""Configuration, from environment variables only, each read in one place.

Each setting is a field below, named as its variable without the CHURN_ prefix, with
its default and a description. README.md's "Configuration" tables are made from them
(`python -m churn.settings README.md` rewrites them; tests/test_settings.py fails when
they differ), and the command line takes its defaults from them.

- `ModelSettings`: which model in the store, for the service and the offline commands.
- `ServiceSettings`: the service's, read once at start-up (the model's too).
- `ClientSettings`: the Python client's, the command line's and the UI's.
- `ImportSettings`: `churn import-model`'s.

Without CHURN_API_KEYS anyone who can reach the port can score customers and read the
model's metadata: run it only on a network where that is acceptable. CHURN_API_KEYS set
to something that names no key (" ", ",") is refused at start-up: whoever set it meant
keys, and the service would otherwise run open without a word.
The port is BentoML's own: `bentoml serve --port` or BENTOML_PORT (default 3000).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from churn.record.errors import ConfigurationError

if TYPE_CHECKING:  # typing.Self is 3.11's; the batch wheel (deploy/batch) runs on 3.10 too
    from typing import Self

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

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable a field is read from: `api_url` is CHURN_API_URL."""
        if name not in cls.model_fields:
            raise KeyError(f"{cls.__name__} has no setting {name!r}")
        return _PREFIX + name.upper()

    @classmethod
    def shown_default(cls, name: str) -> str:
        """What a command line shows as an option's default: the variable, else its default."""
        default = _shown(cls.model_fields[name].get_default(call_default_factory=True), quote="")
        return f"{cls.variable(name)}, else {default}"

    @classmethod
    def markdown(cls) -> str:
        """The settings as a Markdown table: variable, default and description of each."""
        rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
        for name, field in cls.model_fields.items():
            if not field.description:
                raise ValueError(f"{cls.__name__}.{name} needs Field(description=...)")
            default = _shown(field.get_default(call_default_factory=True))
            cells = (f"`{cls.variable(name)}`", default, field.description)
            rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return "\n".join(rows)


def _shown(default: Any, quote: str = "`") -> str:
    if default is None or default == ():
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return f"{default:g}"
    if isinstance(default, str):
        return f"{quote}{default}{quote}"
    return str(default)


class ModelSettings(_FromEnvironment):
    model_tag: str = Field(
        "churn_model:latest",
        description="the model in the BentoML store that the service packs and loads, and that "
        "`churn drift`, `churn evaluate` and `churn batch` use unless told another",
    )


class ServiceSettings(ModelSettings):
    workers: int = Field(2, ge=1, description="server worker processes (one per core)")
    timeout_seconds: int = Field(
        120, ge=1,
        description="time allowed before an answer starts; past it, 504 with a JSON error",
    )  # fmt: skip
    # One would be no batching at all (serving.batching).
    max_batch_size: int = Field(
        512, ge=2,
        description="batching: most customers gathered from separate requests into one model "
        "call (a larger request is scored as sent)",
    )  # fmt: skip
    max_latency_ms: int = Field(
        10_000, ge=1,
        description="batching: a queued request that has waited this long is answered 503 "
        "instead of scored; never a delay",
    )  # fmt: skip
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO",
        description="the `churn.*` loggers; the access log is one INFO line per request",
    )
    log_flush_ms: int = Field(
        500, ge=0,
        description="the `churn.*` lines go to stderr in batches, each line within this many "
        "milliseconds (warnings and errors at once, the rest when a worker stops); 0 writes "
        "every line at once, a system call per request",
    )  # fmt: skip
    api_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="comma-separated keys; when set, every route but the probes, `/metrics` "
        "and the docs needs `Authorization: Bearer <key>`",
    )
    metrics_require_key: bool = Field(False, description="put `/metrics` behind the keys too")
    max_upload_mb: int = Field(
        256, ge=1,
        description="largest request body (413 before it is read); a 1,000,000-row CSV is "
        "about 90 MB",
    )  # fmt: skip
    max_rows: int = Field(2_000_000, ge=1, description="most rows in one file (413)")
    keepalive_requests: int = Field(
        100, ge=1,
        description="requests a keep-alive connection serves on average before it is "
        "recycled, so that a client's fixed connection pool spreads over all workers instead "
        "of pinning one (as nginx's `keepalive_requests`)",
    )  # fmt: skip
    fast_path: bool = Field(
        True,
        description="answer well-formed `/v1/customer` and `/v2/predict` requests ahead of "
        'the routers (see "The fast path" below); `false` sends every request through them',
    )
    bulk_threads: int = Field(
        2, ge=1,
        description="XGBoost threads for one request of 10,000 customers or more (not for "
        "files, whose reading and writing hold the other core)",
    )  # fmt: skip
    drift_profiling: bool = Field(
        True,
        description="count every customer scored into the drift profile (`GET /v2/drift`, "
        'see "Model health"); `false` turns it off',
    )
    drift_window_minutes: int = Field(
        60, ge=1, le=7 * 24 * 60,
        description="the drift window of `GET /v2/drift` and the drift gauges: whole "
        "minutes of the clock, shown when it closes (at most a week; see \"Model health\")",
    )  # fmt: skip

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            keys = tuple(key.strip() for key in value.split(",") if key.strip())
            if value and not keys:  # "" is unset (Compose's ${CHURN_API_KEYS:-})
                raise ValueError("names no key")
            return keys
        return value

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb << 20


class ClientSettings(_FromEnvironment):
    api_url: str = Field(DEFAULT_URL, description="the service's root URL")
    api_key: str | None = Field(
        None, description="the key sent as `Authorization: Bearer <key>`, if the service has keys"
    )
    api_timeout: float = Field(30.0, gt=0, description="seconds the UI waits for each answer")

    @field_validator("api_url", mode="after")
    @classmethod
    def _without_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/") or DEFAULT_URL

    @field_validator("api_key", mode="after")
    @classmethod
    def _unset_if_empty(cls, value: str | None) -> str | None:
        return value or None


class ImportSettings(_FromEnvironment):
    # None: churn.model.environments.default_cache() ($XDG_CACHE_HOME or ~/.cache).
    import_env_cache: Path | None = Field(
        default=None,
        description="where `churn import-model` keeps the environments foreign models "
        "are exported in (unset: ~/.cache/churn/import-envs, or under $XDG_CACHE_HOME)",
    )


_SAYS = {
    "int_parsing": "is not a whole number.",
    "int_from_float": "is not a whole number.",
    "float_parsing": "is not a number.",
    "bool_parsing": "is not true or false.",
    "literal_error": f"is not a level; use one of {', '.join(LOG_LEVELS)}.",
}
_NO_KEY = (
    "names no key: give comma-separated keys, or leave it empty or unset to run "
    "without authentication."
)


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
    if name == _PREFIX + "API_KEYS" and detail["type"] == "value_error":
        return ConfigurationError(f"{name} is set but {_NO_KEY}")
    says = _SAYS.get(detail["type"], f"is not valid: {detail['msg']}.")
    shown = "(hidden)" if name.endswith(("_KEY", "_KEYS")) else repr(value)
    return ConfigurationError(f"{name}={shown} {says}")


# README.md's tables: a block per settings class, between these two lines.
_BLOCK = re.compile(
    r"(?P<start><!-- settings: (?P<name>\w+) .*?-->\n)(?P<table>.*?)(?P<end><!-- end settings -->)",
    re.DOTALL,
)


def _all_settings(root: type[_FromEnvironment] = _FromEnvironment) -> list[type[_FromEnvironment]]:
    found = []
    for cls in root.__subclasses__():
        found += [cls, *_all_settings(cls)]
    return found


def with_tables(text: str) -> str:
    """`text` (README.md) with each settings block's table made from its class.

    A `ValueError` when a block names no settings class, or when a class's variables are
    in no block (its own, or that of a class that extends it).
    """
    classes = {cls.__name__: cls for cls in _all_settings()}
    shown = [match["name"] for match in _BLOCK.finditer(text)]
    unknown = sorted(set(shown) - set(classes))
    if unknown:
        raise ValueError(f"no settings class is named {', '.join(unknown)}")
    missing = sorted(
        name
        for name, cls in classes.items()
        if not any(issubclass(classes[block], cls) for block in shown)
    )
    if missing:
        raise ValueError(f"no table shows {', '.join(missing)}: add a block for it")
    return _BLOCK.sub(
        lambda match: f"{match['start']}\n{classes[match['name']].markdown()}\n\n{match['end']}",
        text,
    )


def main(argv: list[str]) -> int:
    """`python -m churn.settings README.md`: rewrite the file's settings tables."""
    if len(argv) != 1:
        print("usage: python -m churn.settings README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    text = path.read_text(encoding="utf-8")
    updated = with_tables(text)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    print(f"{path}: settings tables {'rewritten' if updated != text else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
