from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, SealedTokenColumns, Timestamps, UuidPrimaryKey, enum_column


class ConnectionStatus(enum.StrEnum):
    CONNECTED = "connected"
    NEEDS_REAUTH = "needs_reauth"
    DISCONNECTED = "disconnected"


class Connection(UuidPrimaryKey, Timestamps, SealedTokenColumns, Base):
    """An org's link to one QuickBooks company; tokens are ciphertext from qbsync.crypto."""

    __tablename__ = "connections"
    __table_args__ = (
        # Two orgs sharing one company would fight over its rotating refresh token.
        Index(
            "uq_connections_realm_id_connected",
            "realm_id",
            unique=True,
            postgresql_where=text("status = 'connected'"),
        ),
    )

    org_id: Mapped[str] = mapped_column(String(128), unique=True)
    realm_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[ConnectionStatus] = mapped_column(
        enum_column(ConnectionStatus, "connection_status")
    )
    company_name: Mapped[str | None] = mapped_column(String(500))
    country: Mapped[str | None] = mapped_column(String(8))
    home_currency: Mapped[str | None] = mapped_column(String(3))
    multi_currency: Mapped[bool] = mapped_column(default=False)
    automated_sales_tax: Mapped[bool] = mapped_column(default=False)
    custom_txn_numbers: Mapped[bool] = mapped_column(default=False)
    connected_by: Mapped[str | None] = mapped_column(String(128))
    connected_at: Mapped[datetime | None]
    disconnected_at: Mapped[datetime | None]
    last_refreshed_at: Mapped[datetime | None]
    hard_expiry_warned_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # The month (YYYY-MM, UTC) whose metered-read budget warning was sent, so it is sent once.
    read_budget_warned_month: Mapped[str | None] = mapped_column(String(7))
    # Who is refreshing the tokens right now, and until when (R6 without a lock held over the
    # call to Intuit, R13); an expired lease belongs to a process that died mid-refresh.
    refresh_lease_id: Mapped[str | None] = mapped_column(String(32))
    refresh_lease_until: Mapped[datetime | None]
