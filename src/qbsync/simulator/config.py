"""How a simulator instance behaves: credentials, time scale, limits, webhooks, seeded companies."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The simulator's own app credentials. qbsync's dev settings use the same literals (a test keeps
# them equal); the simulator plays Intuit's side and imports nothing from qbsync.
DEFAULT_CLIENT_ID = "simulator-client-id"
DEFAULT_CLIENT_SECRET = "simulator-client-secret"  # noqa: S105 - a public test value
DEFAULT_VERIFIER_TOKEN = "simulator-verifier-token"  # noqa: S105 - a public test value

WebhookFormat = Literal["legacy", "cloudevents"]
Country = Literal["US", "GB"]


class LimitsConfig(BaseModel):
    """Intuit's per-company throttles; a minute is an Intuit minute (see `time_scale`)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    requests_per_minute: int = Field(default=500, ge=1)
    max_in_flight: int = Field(default=10, ge=1)
    batch_requests_per_minute: int = Field(default=40, ge=1)
    # Real Intuit answers a throttled JSON request with an XML body; "json" is for clients
    # that want to test the JSON shape the docs also show.
    throttle_body: Literal["xml", "json"] = "xml"


class CompanySpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    realm_id: str = Field(pattern=r"^\d{1,20}$")
    name: str
    country: Country
    # Seeds Preferences.CurrencyPrefs.MultiCurrencyEnabled; POST /_sim/companies/{realm_id}/
    # multicurrency turns it on later (QBO never turns it off again).
    multicurrency: bool = False


DEFAULT_COMPANIES: tuple[CompanySpec, ...] = (
    CompanySpec(realm_id="9341450000000001", name="Craig's Design and Landscaping", country="US"),
    CompanySpec(realm_id="9341450000000002", name="Trafalgar Consulting Ltd", country="GB"),
    CompanySpec(realm_id="9341450000000003", name="Second Street Bakery", country="US"),
)


class SimulatorConfig(BaseModel):
    """Durations are in Intuit seconds unless the name says `real`; see `time_scale`."""

    model_config = ConfigDict(frozen=True)

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    verifier_token: str = DEFAULT_VERIFIER_TOKEN
    # The app the consent page names, as Intuit shows the app's name from its developer portal.
    app_name: str = "Simulator test app"
    # Intuit only redirects to URIs registered for the app; empty accepts any URI.
    redirect_uris: tuple[str, ...] = ()
    webhook_url: str | None = None
    webhook_format: WebhookFormat = "cloudevents"
    # How long changes are gathered before one POST, and how many one POST carries.
    webhook_batch_window: float = Field(default=0.5, ge=0)
    webhook_max_batch: int = Field(default=100, ge=1)
    # The share of changes whose notification is silently never sent (a lossy network, or an
    # outage at Intuit); POST /_sim/webhooks/drop changes it while running.
    webhook_drop_fraction: float = Field(default=0.0, ge=0, le=1)
    # Intuit wants an answer within 3 s; not time-scaled, it measures the receiver.
    webhook_timeout_real_seconds: float = Field(default=3.0, gt=0)
    # 60 means an Intuit minute passes in one real second (tokens, limits, retries, dates).
    time_scale: float = Field(default=1.0, gt=0)
    access_token_ttl: int = Field(default=3600, ge=1)
    refresh_token_ttl: int = Field(default=8_726_400, ge=1)
    refresh_token_hard_ttl: int = Field(default=157_680_000, ge=1)
    refresh_grace: int = Field(default=86_400, ge=0)
    authorization_code_ttl: int = Field(default=600, ge=1)
    # Added to every accounting API call while it holds an in-flight slot.
    api_latency: float = Field(default=0.0, ge=0)
    limits: LimitsConfig = LimitsConfig()
    companies: tuple[CompanySpec, ...] = DEFAULT_COMPANIES
    batch_max_items: int = Field(default=30, ge=1)
    cdc_window_days: int = Field(default=30, ge=1)
    cdc_max_objects: int = Field(default=1000, ge=1)
    # Where companies, tokens and documents are kept across restarts; None keeps them in memory.
    data_dir: Path | None = None
    # How long changes gather before the state file is rewritten (real seconds).
    save_delay_real_seconds: float = Field(default=0.2, ge=0)
