"""Settings: one object, QBSYNC_ prefix, `__` nesting; production refuses placeholders by name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from qbsync.cli import main
from qbsync.connections.intuit import intuit_endpoints
from qbsync.crypto import generate_key
from qbsync.settings import DEV_ENCRYPTION_KEYS, Settings

PRODUCTION_READY = {
    "QBSYNC_ENV": "production",
    "QBSYNC_DATABASE__URL": "postgresql+asyncpg://qbsync@db/qbsync",
    "QBSYNC_REDIS__URL": "redis://redis:6379/0",
    "QBSYNC_AUTH__JWT_SECRET": "a-real-secret-from-the-platform-0123456789",
    "QBSYNC_PLATFORM__WEBHOOK_SECRET": "whsec_cmVhbC1wbGF0Zm9ybS1zZWNyZXQ=",
    "QBSYNC_CRYPTO__ENCRYPTION_KEYS": f"k1:{generate_key()}",
    "QBSYNC_INTUIT__ENVIRONMENT": "production",
    "QBSYNC_INTUIT__CLIENT_ID": "ABcdefClientId",
    "QBSYNC_INTUIT__CLIENT_SECRET": "real-client-secret",
    "QBSYNC_INTUIT__WEBHOOK_VERIFIER_TOKEN": "real-verifier-token",
    "QBSYNC_PLATFORM__SETTINGS_URL": "https://app.example.com/settings/integrations",
    "QBSYNC_INTUIT__REDIRECT_URI": "https://qbsync.example.com/v1/quickbooks/callback",
}


def _env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_nested_variables_reach_their_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.setenv("QBSYNC_PLATFORM__EVENTS_URL", "https://platform.test/hooks/qbsync")
    monkeypatch.setenv("QBSYNC_PLATFORM__EVENTS_SECRET", "whsec_b3V0Ym91bmQtZXZlbnRzLXNlY3JldA==")
    monkeypatch.setenv("QBSYNC_PLATFORM__SETTINGS_URL", "https://app.test/settings")
    monkeypatch.setenv("QBSYNC_INTUIT__REDIRECT_URI", "https://qbsync.test/v1/quickbooks/callback")
    settings = Settings()
    assert settings.database.url is not None
    assert settings.database.url.get_secret_value().endswith("@db/qbsync")
    assert settings.platform.events_url == "https://platform.test/hooks/qbsync"
    assert settings.intuit.redirect_uri.endswith("/callback")
    endpoints = intuit_endpoints(settings)
    assert endpoints.api_base_url == "https://quickbooks.api.intuit.com"
    assert "real-client-secret" not in repr(settings)


def test_production_refuses_outbound_events_without_their_own_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.setenv("QBSYNC_PLATFORM__EVENTS_URL", "https://platform.test/hooks/qbsync")
    with pytest.raises(ValueError, match="QBSYNC_PLATFORM__EVENTS_SECRET"):
        Settings()


def test_a_blank_events_url_or_secret_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """As docker compose passes an unset variable: events wait for a URL, nothing is refused."""
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.setenv("QBSYNC_PLATFORM__EVENTS_URL", "")
    monkeypatch.setenv("QBSYNC_PLATFORM__EVENTS_SECRET", " ")
    settings = Settings()
    assert settings.platform.events_url is None
    assert settings.platform.events_secret is None


def test_endpoint_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBSYNC_INTUIT__ENVIRONMENT", "sandbox")
    monkeypatch.setenv("QBSYNC_INTUIT__TOKEN_URL", "http://127.0.0.1:9999/token")
    endpoints = intuit_endpoints(Settings(env="dev"))
    assert endpoints.token_url == "http://127.0.0.1:9999/token"
    assert endpoints.api_base_url == "https://sandbox-quickbooks.api.intuit.com"


@pytest.mark.parametrize(
    "variable",
    [
        "QBSYNC_AUTH__JWT_SECRET",
        "QBSYNC_PLATFORM__WEBHOOK_SECRET",
        "QBSYNC_CRYPTO__ENCRYPTION_KEYS",
        "QBSYNC_INTUIT__CLIENT_SECRET",
        "QBSYNC_INTUIT__WEBHOOK_VERIFIER_TOKEN",
        "QBSYNC_DATABASE__URL",
    ],
)
def test_production_refuses_a_missing_or_placeholder_secret_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.delenv(variable)
    with pytest.raises(ValidationError, match=variable):
        Settings()
    monkeypatch.setenv(variable, "changeme")
    if variable != "QBSYNC_DATABASE__URL":
        with pytest.raises(ValidationError, match=variable):
            Settings()


def test_the_cli_refuses_to_start_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.delenv("QBSYNC_AUTH__JWT_SECRET")
    from qbsync.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["migrate"]) == 2
    finally:
        get_settings.cache_clear()
    assert "QBSYNC_AUTH__JWT_SECRET" in capsys.readouterr().err


def test_dev_mode_runs_on_defaults() -> None:
    settings = Settings(env="dev")
    assert settings.uses_simulator
    assert intuit_endpoints(settings).token_url == "http://127.0.0.1:8100/oauth2/v1/tokens/bearer"


def test_the_simulator_stands_in_only_until_intuit_credentials_are_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(env="dev").intuit.environment == "simulator"
    monkeypatch.setenv("QBSYNC_INTUIT__CLIENT_ID", "ABrealClientId")
    assert Settings(env="dev").intuit.environment == "sandbox"
    monkeypatch.setenv("QBSYNC_INTUIT__ENVIRONMENT", "production")
    assert Settings(env="dev").intuit.environment == "production"


def test_production_refuses_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.setenv("QBSYNC_INTUIT__ENVIRONMENT", "simulator")
    with pytest.raises(ValidationError, match="QBSYNC_INTUIT__ENVIRONMENT"):
        Settings()


def test_production_refuses_app_keys_without_an_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Intuit keys belong to sandbox or production; guessing one fails every call."""
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.delenv("QBSYNC_INTUIT__ENVIRONMENT")
    with pytest.raises(ValidationError, match="QBSYNC_INTUIT__ENVIRONMENT"):
        Settings()
    monkeypatch.setenv("QBSYNC_INTUIT__ENVIRONMENT", "sandbox")
    assert Settings().intuit.environment == "sandbox"


def test_production_refuses_the_dev_key_anywhere_in_the_key_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each key of the list is checked: the dev key still decrypts when listed second."""
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.setenv(
        "QBSYNC_CRYPTO__ENCRYPTION_KEYS", f"k1:{generate_key()},{DEV_ENCRYPTION_KEYS}"
    )
    with pytest.raises(ValidationError, match="key 'dev'"):
        Settings()
    monkeypatch.setenv("QBSYNC_CRYPTO__ENCRYPTION_KEYS", f"k1:{generate_key()},k0:changeme")
    with pytest.raises(ValidationError, match="key 'k0'"):
        Settings()
    monkeypatch.setenv("QBSYNC_CRYPTO__ENCRYPTION_KEYS", f"k2:{generate_key()},k1:{generate_key()}")
    assert Settings().env == "production"


@pytest.mark.parametrize("env", ["dev", "production"])
def test_an_hs256_secret_shorter_than_32_bytes_is_refused(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.setenv("QBSYNC_ENV", env)
    monkeypatch.setenv("QBSYNC_AUTH__JWT_SECRET", "x" * 31)
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings()
    monkeypatch.setenv("QBSYNC_AUTH__JWT_SECRET", "é" * 16)
    assert Settings().auth.jwt_secret.get_secret_value() == "é" * 16, "32 bytes in UTF-8"


def test_production_refuses_the_dev_key_spelled_another_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dev key's base64 with its last (padding) bits changed decodes to the same key."""
    _env(monkeypatch, PRODUCTION_READY)
    respelled = DEV_ENCRYPTION_KEYS.partition(":")[2][:-2] + "N="
    assert respelled != DEV_ENCRYPTION_KEYS.partition(":")[2]
    monkeypatch.setenv("QBSYNC_CRYPTO__ENCRYPTION_KEYS", f"prod:{respelled}")
    with pytest.raises(ValidationError, match="key 'prod'"):
        Settings()


@pytest.mark.parametrize("secret", ["whsec_YQ==", "whsec_not-base64!", "c2hvcnQ="])
def test_production_refuses_a_guessable_platform_webhook_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.setenv("QBSYNC_PLATFORM__WEBHOOK_SECRET", secret)
    with pytest.raises(ValidationError, match="QBSYNC_PLATFORM__WEBHOOK_SECRET"):
        Settings()
    monkeypatch.setenv(
        "QBSYNC_PLATFORM__WEBHOOK_SECRET", PRODUCTION_READY["QBSYNC_PLATFORM__WEBHOOK_SECRET"]
    )
    monkeypatch.setenv("QBSYNC_PLATFORM__EVENTS_SECRET", secret)
    with pytest.raises(ValidationError, match="QBSYNC_PLATFORM__EVENTS_SECRET"):
        Settings()


@pytest.mark.parametrize(
    "variable", ["QBSYNC_PLATFORM__SETTINGS_URL", "QBSYNC_INTUIT__REDIRECT_URI"]
)
def test_production_refuses_the_laptop_addresses(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    _env(monkeypatch, PRODUCTION_READY)
    monkeypatch.delenv(variable)
    with pytest.raises(ValidationError, match=variable):
        Settings()
