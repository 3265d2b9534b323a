"""The QuickBooks client's own configuration: small frozen objects, no settings machinery.

`qbsync.connections.intuit` builds them from `Settings`; a test, a benchmark or another program
builds them directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import SecretStr

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
# Intuit serves 75 whatever is asked for since Aug 2025; we still send it so a future breaking
# minor version never changes our payloads silently.
MINOR_VERSION = 75
# Intuit ends any request after 120 s, so an in-flight lease never needs to outlive that by much.
INTUIT_REQUEST_TIMEOUT_SECONDS = 120.0

INTUIT_AUTHORIZE_URL = "https://appcenter.intuit.com/connect/oauth2"
INTUIT_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"  # noqa: S105 (a URL)
INTUIT_REVOKE_URL = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
INTUIT_API_BASE_URLS: dict[str, str] = {
    "production": "https://quickbooks.api.intuit.com",
    "sandbox": "https://sandbox-quickbooks.api.intuit.com",
}


@dataclass(frozen=True)
class IntuitEndpoints:
    """Where OAuth and the Accounting API live: Intuit's hosts, a simulator, or overrides."""

    authorize_url: str
    token_url: str
    revoke_url: str
    api_base_url: str


@dataclass(frozen=True)
class RetryPolicy:
    """How long the client itself rides out 429 / 5xx / network errors before giving up.

    Past the bound the typed error (retryable=True) reaches the job layer, which defers the job
    rather than holding a worker for minutes.
    """

    max_attempts: int = 4
    base_delay_seconds: float = 1.0
    # Intuit asks for at least 60 s after a 429 when it sends no Retry-After.
    throttle_delay_seconds: float = 60.0
    max_delay_seconds: float = 120.0
    max_total_seconds: float = 150.0
    jitter_ratio: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay_seconds, self.throttle_delay_seconds, self.max_total_seconds) < 0:
            raise ValueError("retry delays must not be negative")


@dataclass(frozen=True)
class RateLimitConfig:
    """Per-company limits shared by every process through Redis."""

    requests_per_window: int = 450
    max_in_flight: int = 8
    batch_requests_per_window: int = 38
    # 60 s in production; tests and time-scaled benchmarks shrink it.
    window_seconds: float = 60.0
    # A crashed process's in-flight slot comes back after this long.
    lease_seconds: float = INTUIT_REQUEST_TIMEOUT_SECONDS + 30.0
    # Upper bound on one sleep while waiting for an in-flight slot (releases are not signalled).
    max_poll_seconds: float = 0.25
    key_prefix: str = "qbsync"

    def __post_init__(self) -> None:
        if min(self.requests_per_window, self.max_in_flight, self.batch_requests_per_window) < 1:
            raise ValueError("rate limits must be at least 1")
        if self.window_seconds <= 0 or self.lease_seconds <= 0 or self.max_poll_seconds <= 0:
            raise ValueError("rate limit durations must be positive")


@dataclass(frozen=True)
class ApiCall:
    """One call to the Accounting API of one company. `metered` is Intuit's CorePlus (data out:
    reads, queries, CDC, a batch holding a query); the others are Core (writes)."""

    operation: str
    metered: bool
    realm_id: str

    @property
    def kind(self) -> Literal["core", "coreplus"]:
        """Intuit's name for the call's class, as its App Partner Program bills it."""
        return "coreplus" if self.metered else "core"


@dataclass(frozen=True)
class QboConfig:
    client_id: str
    client_secret: SecretStr
    redirect_uri: str
    endpoints: IntuitEndpoints
    webhook_verifier_token: SecretStr
    minor_version: int = MINOR_VERSION
    timeout_seconds: float = 30.0
    # Intuit's cap on one CDC answer; lower only against a test server that caps lower.
    cdc_max_objects: int = 1000
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # How long one call may wait for the company's shared limits before it gives up with
    # RateLimitBusyError; None waits as long as the limits say.
    limiter_wait_seconds: float | None = None
    # Told of every call sent to the Accounting API (Intuit meters reads: P7).
    call_observer: Callable[[ApiCall], None] | None = None
    # Awaited after each answered call, e.g. to count calls per company where every process
    # sees them. It must not raise: the call has been answered (a write may have landed) and
    # its outcome is what the caller needs, so a recorder handles its own failures.
    call_recorder: Callable[[ApiCall], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        if self.limiter_wait_seconds is not None and self.limiter_wait_seconds < 0:
            raise ValueError("limiter_wait_seconds must not be negative")
