from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ConnectionState = Literal["not_connected", "connected", "needs_reauth", "disconnected"]
CheckOutcome = Literal["pass", "fail", "warn", "skipped"]


class ConnectStarted(BaseModel):
    authorization_url: str = Field(description="Send the browser here to consent at Intuit.")
    expires_at: datetime = Field(description="The consent must finish before this time.")


class TokenHealth(BaseModel):
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None = Field(
        description="When the refresh token dies if unused (Intuit's rolling ~100 days)."
    )
    refresh_hard_expires_at: datetime | None = Field(
        description="The refresh token's absolute end (Intuit's 5-year cap), when Intuit says."
    )
    days_left: int | None = Field(
        description="Whole days until the user must reconnect at the latest."
    )
    last_refreshed_at: datetime | None


class ConnectionStatusView(BaseModel):
    status: ConnectionState
    company_name: str | None = None
    realm_id: str | None = None
    country: str | None = None
    home_currency: str | None = None
    automated_sales_tax: bool | None = None
    multi_currency: bool | None = None
    custom_txn_numbers: bool | None = None
    connected_since: datetime | None = None
    disconnected_at: datetime | None = None
    message: str | None = Field(default=None, description="What to do next, when anything.")
    reason: str | None = Field(
        default=None, description="Why the connection needs a reconnect, when it does."
    )
    token_health: TokenHealth | None = None


class CheckResult(BaseModel):
    name: str
    outcome: CheckOutcome
    message: str


class ConnectionTestReport(BaseModel):
    ok: bool = Field(description="True when no check failed (warnings allowed).")
    checked_at: datetime
    checks: list[CheckResult]


class ConfirmConnect(BaseModel):
    handle: str = Field(
        min_length=1,
        max_length=128,
        description="The `handle` the callback put on the settings page's URL.",
    )


class DisconnectResult(BaseModel):
    status: ConnectionState
    revoked_at_intuit: bool
    message: str
