"""The one settings object: `QBSYNC_` prefix, `__` between a group and its field."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "test", "production"]
IntuitEnvironment = Literal["sandbox", "production", "simulator"]

# Values that are fine on a laptop and must never reach production. `qbsync dev` and the tests
# run with them; any other mode refuses to start while one of them (or nothing) is set.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"
DEV_PLATFORM_WEBHOOK_SECRET = "whsec_ZGV2LW9ubHktcGxhdGZvcm0td2ViaG9vay1zZWNyZXQ="
# What qbsync signs its outbound events with in dev, for the dev receiver at /dev/platform/events.
DEV_PLATFORM_EVENTS_SECRET = "whsec_ZGV2LW9ubHktcGxhdGZvcm0tZXZlbnRzLXNlY3JldA=="
DEV_ENCRYPTION_KEYS = "dev:ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM="
DEV_INTUIT_CLIENT_ID = "simulator-client-id"
DEV_INTUIT_CLIENT_SECRET = "simulator-client-secret"
DEV_INTUIT_VERIFIER_TOKEN = "simulator-verifier-token"
PLACEHOLDERS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "secret",
        DEV_JWT_SECRET,
        DEV_PLATFORM_WEBHOOK_SECRET,
        DEV_PLATFORM_EVENTS_SECRET,
        DEV_ENCRYPTION_KEYS,
        DEV_INTUIT_CLIENT_SECRET,
        DEV_INTUIT_VERIFIER_TOKEN,
    }
)
MIN_HS256_SECRET_BYTES = 32
MIN_WEBHOOK_SECRET_BYTES = 16
DEFAULT_SETTINGS_URL = "http://localhost:3000/settings/integrations"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/v1/quickbooks/callback"


class SettingsError(ValueError):
    """A setting that makes it unsafe or impossible to start; the message names the variable."""


class DatabaseSettings(BaseModel):
    url: SecretStr | None = None
    pool_size: int = Field(default=10, ge=1, le=200)
    max_overflow: int = Field(default=10, ge=0, le=200)
    # How long a request or job waits for a pooled connection before it is answered 503.
    pool_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    echo: bool = False


class RedisSettings(BaseModel):
    url: SecretStr | None = None
    queue_name: str = Field(default="qbsync:queue", min_length=1)
    key_prefix: str = Field(default="qbsync", min_length=1)


class PushSettings(BaseModel):
    """How the push engine takes its work: a slice per job, each company in turn."""

    # Records one push job takes for a company before the next company's job gets its turn:
    # one batch call's worth.
    slice_size: int = Field(default=30, ge=1, le=300)
    # How long a claimed record stays the claiming job's; past it (the worker died), another
    # job takes it over, looking its document up before writing (R4).
    lease_seconds: float = Field(default=600.0, ge=1, le=3600)
    # Slices of one company pushed at once: while one batch waits on QuickBooks, the next is
    # planned. The shared limiter keeps them within Intuit's limits.
    jobs_per_company: int = Field(default=3, ge=1, le=10)
    # How long a call waits for a slot under the company's shared limits before its slice
    # defers (nothing was sent) until the limits' window frees a slot, 5 s at the least.
    limiter_wait_seconds: float = Field(default=20.0, ge=0.1, le=120)


class ReconcileSettings(BaseModel):
    """The periodic reconciliation: Change Data Capture since a watermark, per company."""

    # Read back this far before the watermark: a change QuickBooks stamped just before its
    # answer's time, but committed after it, is still seen.
    overlap_seconds: int = Field(default=300, ge=0, le=3600)
    # How long a run owns its company; past it (the worker died) another run may start.
    lease_seconds: int = Field(default=900, ge=30, le=7200)
    # Intuit's CDC reaches 30 days back; an older watermark means a full re-read instead.
    cdc_window_days: int = Field(default=30, ge=1, le=30)
    # Rounds of CDC one run makes when QuickBooks' 1,000-object cap cuts an answer short.
    max_cdc_rounds: int = Field(default=20, ge=1, le=200)


class AuthSettings(BaseModel):
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwks_url: str | None = None
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    required_entitlement: str = "integrations"

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough_for_hs256(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value().encode()) < MIN_HS256_SECRET_BYTES:
            raise ValueError(
                f"QBSYNC_AUTH__JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes: "
                "HS256 is only as strong as its key (RFC 7518 §3.2)"
            )
        return secret


class PlatformSettings(BaseModel):
    webhook_secret: SecretStr = SecretStr(DEV_PLATFORM_WEBHOOK_SECRET)
    events_url: str | None = None
    events_secret: SecretStr | None = None
    settings_url: str = DEFAULT_SETTINGS_URL
    # Divides the outbound events' retry delays and their five days before giving up (tests).
    delivery_time_scale: float = Field(default=1.0, gt=0)

    @field_validator("events_url", "events_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # docker compose passes an unset variable on as "": no URL, not a URL of "".
        return None if isinstance(value, str) and not value.strip() else value


class IntuitSettings(BaseModel):
    client_id: str = DEV_INTUIT_CLIENT_ID
    client_secret: SecretStr = SecretStr(DEV_INTUIT_CLIENT_SECRET)
    redirect_uri: str = DEFAULT_REDIRECT_URI
    webhook_verifier_token: SecretStr = SecretStr(DEV_INTUIT_VERIFIER_TOKEN)
    # Unset: the simulator while no Intuit client id is configured, Intuit's sandbox once one is.
    environment: IntuitEnvironment = "simulator"
    authorize_url: str | None = None
    token_url: str | None = None
    revoke_url: str | None = None
    api_base_url: str | None = None
    minor_version: int = 75
    timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    # Intuit allows 500/min and 10 in flight per company; we stay under both by default.
    requests_per_minute: int = Field(default=450, ge=1, le=500)
    max_in_flight: int = Field(default=8, ge=1, le=10)
    batch_requests_per_minute: int = Field(default=38, ge=1, le=40)
    # How long a company's reference lists are kept between reads (P7).
    reference_cache_seconds: int = Field(default=300, ge=10, le=3600)
    # Intuit's cap on one CDC answer (1,000): lower only against a simulator set lower.
    cdc_max_objects: int = Field(default=1000, ge=1, le=1000)
    # Each company's budget of metered (CorePlus) calls per UTC month: the platform is warned
    # at 80 %, nothing is refused. Intuit's own cap is per app, across every company (P7).
    monthly_coreplus_budget: int = Field(default=20_000, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _blank_environment_is_unset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("environment") == "":
            return {key: value for key, value in data.items() if key != "environment"}
        return data

    @model_validator(mode="after")
    def _default_environment(self) -> IntuitSettings:
        # Bypasses pydantic's setattr so `environment_given` still tells a default from a choice.
        if not self.environment_given and self.has_app:
            object.__setattr__(self, "environment", "sandbox")
        return self

    @property
    def has_app(self) -> bool:
        return bool(self.client_id) and self.client_id != DEV_INTUIT_CLIENT_ID

    @property
    def environment_given(self) -> bool:
        return "environment" in self.model_fields_set


class CryptoSettings(BaseModel):
    # Comma-separated `key_id:base64(32 bytes)`; the first encrypts, every one decrypts.
    encryption_keys: SecretStr = SecretStr(DEV_ENCRYPTION_KEYS)


class SimulatorSettings(BaseModel):
    port: int = Field(default=8100, ge=1, le=65535)
    time_scale: float = Field(default=1.0, gt=0)
    webhook_format: Literal["legacy", "cloudevents"] = "cloudevents"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="QBSYNC_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    env: Environment = "production"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path(".qbsync")
    log_level: str = "INFO"
    log_json: bool = True
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Browser origins of the platform's frontend allowed to call the API (a JSON list).
    cors_origins: list[str] = Field(default_factory=list)

    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    auth: AuthSettings = AuthSettings()
    platform: PlatformSettings = PlatformSettings()
    intuit: IntuitSettings = IntuitSettings()
    push: PushSettings = PushSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    crypto: CryptoSettings = CryptoSettings()
    simulator: SimulatorSettings = SimulatorSettings()

    @property
    def is_dev(self) -> bool:
        return self.env in ("dev", "test")

    @property
    def uses_simulator(self) -> bool:
        return self.intuit.environment == "simulator"

    @model_validator(mode="after")
    def _dev_plays_the_platform_itself(self) -> Settings:
        """Without the platform, dev mode stands in for it: consent lands on the QuickBooks card
        page at `/`, and outbound events go to the dev receiver, signed with a dev secret.
        Whatever the user set is kept."""
        if self.env != "dev":
            return self
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        base = f"http://{host}:{self.port}"
        chosen = self.platform.model_fields_set
        defaults: dict[str, object] = {}
        if "settings_url" not in chosen:
            defaults["settings_url"] = f"{base}/"
        if "events_url" not in chosen:
            defaults["events_url"] = f"{base}/dev/platform/events"
        if "events_secret" not in chosen:
            defaults["events_secret"] = SecretStr(DEV_PLATFORM_EVENTS_SECRET)
        # Bypasses pydantic's setattr so `model_fields_set` still tells a default from a choice.
        for name, value in defaults.items():
            object.__setattr__(self.platform, name, value)
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.is_dev:
            return self
        problems = [name for name, value in self._secrets() if _is_placeholder(value)]
        if self.database.url is None:
            problems.append("QBSYNC_DATABASE__URL")
        if self.redis.url is None:
            problems.append("QBSYNC_REDIS__URL")
        if self.uses_simulator:
            problems.append("QBSYNC_INTUIT__ENVIRONMENT (the simulator is for dev and tests only)")
        elif not self.intuit.environment_given:
            # An app's keys belong to one environment; guessing sandbox would fail every call.
            problems.append(
                "QBSYNC_INTUIT__ENVIRONMENT (say `sandbox` or `production` for these app keys)"
            )
        if self.platform.events_url is not None and self.platform.events_secret is None:
            # The platform verifies outbound events with a secret of their own; signing them
            # with the inbound one would let whoever sends events forge qbsync's.
            problems.append("QBSYNC_PLATFORM__EVENTS_SECRET (needed once EVENTS_URL is set)")
        problems += _dev_encryption_keys(self.crypto.encryption_keys.get_secret_value())
        problems += _short_webhook_secrets(
            [
                ("QBSYNC_PLATFORM__WEBHOOK_SECRET", self.platform.webhook_secret),
                ("QBSYNC_PLATFORM__EVENTS_SECRET", self.platform.events_secret),
            ]
        )
        # Laptop addresses: a browser sent there after consent in production lands nowhere.
        if self.platform.settings_url == DEFAULT_SETTINGS_URL:
            problems.append("QBSYNC_PLATFORM__SETTINGS_URL (still the local default)")
        if self.intuit.redirect_uri == DEFAULT_REDIRECT_URI:
            problems.append("QBSYNC_INTUIT__REDIRECT_URI (still the local default)")
        if problems:
            raise SettingsError(
                "refusing to start outside dev mode with a missing or placeholder value for: "
                + ", ".join(problems)
            )
        return self

    def _secrets(self) -> list[tuple[str, str]]:
        secrets = [
            ("QBSYNC_PLATFORM__WEBHOOK_SECRET", self.platform.webhook_secret.get_secret_value()),
        ]
        if self.platform.events_secret is not None:
            # Dev mode signs outbound events with a published secret; production must not.
            secrets.append(
                ("QBSYNC_PLATFORM__EVENTS_SECRET", self.platform.events_secret.get_secret_value())
            )
        if self.auth.jwks_url is None:
            secrets.append(("QBSYNC_AUTH__JWT_SECRET", self.auth.jwt_secret.get_secret_value()))
        if not self.uses_simulator:
            secrets += [
                (
                    "QBSYNC_INTUIT__CLIENT_ID",
                    "" if self.intuit.client_id == DEV_INTUIT_CLIENT_ID else self.intuit.client_id,
                ),
                ("QBSYNC_INTUIT__CLIENT_SECRET", self.intuit.client_secret.get_secret_value()),
                (
                    "QBSYNC_INTUIT__WEBHOOK_VERIFIER_TOKEN",
                    self.intuit.webhook_verifier_token.get_secret_value(),
                ),
            ]
        return secrets


def _dev_encryption_keys(spec: str) -> list[str]:
    """Each listed key is checked: the dev key beside a real one still decrypts in production.

    Keys are compared by the bytes they decode to, so another spelling of the dev key's base64
    is caught too.
    """
    dev_key = _key_bytes(DEV_ENCRYPTION_KEYS.partition(":")[2])
    entries = [part.strip() for part in spec.split(",") if part.strip()]
    if not entries:
        return ["QBSYNC_CRYPTO__ENCRYPTION_KEYS"]
    found = []
    for entry in entries:
        key_id, _, material = entry.partition(":")
        if _key_bytes(material) == dev_key or _is_placeholder(material):
            found.append(
                f"QBSYNC_CRYPTO__ENCRYPTION_KEYS (key {key_id!r} is a dev or placeholder key)"
            )
    return found


def _key_bytes(material: str) -> bytes | None:
    try:
        return base64.b64decode(material.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _short_webhook_secrets(secrets: list[tuple[str, SecretStr | None]]) -> list[str]:
    """A Standard Webhooks secret is `whsec_` + base64; fewer than 16 bytes is guessable."""
    found = []
    for name, secret in secrets:
        if secret is None:
            continue
        decoded = _key_bytes(secret.get_secret_value().removeprefix("whsec_"))
        if decoded is None or len(decoded) < MIN_WEBHOOK_SECRET_BYTES:
            found.append(f"{name} (whsec_ and base64 of at least {MIN_WEBHOOK_SECRET_BYTES} bytes)")
    return found


def _is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS or value in PLACEHOLDERS


@lru_cache
def get_settings() -> Settings:
    return Settings()
