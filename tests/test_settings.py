from __future__ import annotations

import os

import pytest

from churn.record.errors import ConfigurationError
from churn.settings import DEFAULT_URL, ClientSettings, ServiceSettings, with_tables
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def no_churn_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the variables it sets, whatever the shell running pytest has."""
    for name in list(os.environ):
        if name.startswith("CHURN_"):
            monkeypatch.delenv(name)


def test_defaults_without_any_variable() -> None:
    settings = ServiceSettings.from_environment()

    assert settings.workers == 2
    assert settings.max_batch_size == 512
    assert settings.log_level == "INFO"
    assert settings.log_flush_ms == 500
    assert settings.api_keys == ()
    assert settings.metrics_require_key is False
    assert settings.max_upload_bytes == 256 << 20
    assert settings.fast_path is True


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_WORKERS", " 4 ")
    monkeypatch.setenv("CHURN_MAX_BATCH_SIZE", "2")
    monkeypatch.setenv("CHURN_LOG_LEVEL", "warning")
    monkeypatch.setenv("CHURN_LOG_FLUSH_MS", "0")
    monkeypatch.setenv("CHURN_API_KEYS", " alpha, ,beta ")
    monkeypatch.setenv("CHURN_METRICS_REQUIRE_KEY", "yes")
    monkeypatch.setenv("CHURN_MAX_UPLOAD_MB", "1")
    monkeypatch.setenv("CHURN_FAST_PATH", " Off ")

    settings = ServiceSettings.from_environment()

    assert settings.workers == 4
    assert settings.max_batch_size == 2
    assert settings.log_level == "WARNING"
    assert settings.log_flush_ms == 0
    assert settings.api_keys == ("alpha", "beta")
    assert settings.metrics_require_key is True
    assert settings.max_upload_bytes == 1 << 20
    assert settings.fast_path is False


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHURN_WORKERS", "two", "CHURN_WORKERS='two' is not a whole number."),
        ("CHURN_WORKERS", "0", "CHURN_WORKERS must be at least 1, not 0."),
        ("CHURN_TIMEOUT_SECONDS", "1.5", "CHURN_TIMEOUT_SECONDS='1.5' is not a whole number."),
        # BentoML itself would stop the service with a traceback on a batch size of 1.
        ("CHURN_MAX_BATCH_SIZE", "1", "CHURN_MAX_BATCH_SIZE must be at least 2, not 1."),
        ("CHURN_LOG_FLUSH_MS", "-1", "CHURN_LOG_FLUSH_MS must be at least 0, not -1."),
        ("CHURN_FAST_PATH", "maybe", "CHURN_FAST_PATH='maybe' is not true or false."),
        (
            "CHURN_LOG_LEVEL",
            "verbose",
            "CHURN_LOG_LEVEL='VERBOSE' is not a level; use one of DEBUG, INFO, WARNING, ERROR, "
            "CRITICAL.",
        ),
    ],
)
def test_a_value_the_service_cannot_use_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigurationError) as raised:
        ServiceSettings.from_environment()

    assert str(raised.value) == message


def test_the_clients_settings_come_from_the_same_place(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ClientSettings.from_environment().api_url == DEFAULT_URL
    monkeypatch.setenv("CHURN_API_URL", " http://churn.example:3000/ ")
    monkeypatch.setenv("CHURN_API_KEY", "s3cret")
    monkeypatch.setenv("CHURN_API_TIMEOUT", "2.5")

    settings = ClientSettings.from_environment()

    assert settings.api_url == "http://churn.example:3000"
    assert settings.api_key == "s3cret"
    assert settings.api_timeout == 2.5


def test_a_bad_client_setting_is_named_and_a_key_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHURN_API_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match=r"^CHURN_API_TIMEOUT='soon' is not a number\.$"):
        ClientSettings.from_environment()
    monkeypatch.delenv("CHURN_API_TIMEOUT")
    monkeypatch.setenv("CHURN_API_KEYS", "alpha,beta")
    monkeypatch.setenv("CHURN_WORKERS", "x")
    with pytest.raises(ConfigurationError) as raised:
        ServiceSettings.from_environment()
    assert "alpha" not in str(raised.value)


README = ROOT / "README.md"


def test_the_readme_shows_every_setting_as_the_settings_describe_it() -> None:
    text = README.read_text(encoding="utf-8")
    assert with_tables(text) == text, "run `python -m churn.settings README.md` and commit"
    for cls in (ServiceSettings, ClientSettings):
        for name, field in cls.model_fields.items():
            assert f"| `{cls.variable(name)}` |" in text
            assert field.description


def test_a_settings_class_without_a_table_or_a_table_without_a_class_is_refused() -> None:
    text = README.read_text(encoding="utf-8")
    block = "<!-- settings: ClientSettings "
    with pytest.raises(ValueError, match=r"^no table shows ClientSettings: add a block for it$"):
        with_tables(text.replace(block, "<!-- moved: ClientSettings "))
    with pytest.raises(ValueError, match=r"^no settings class is named ClientSetings$"):
        with_tables(text.replace(block, "<!-- settings: ClientSetings "))
