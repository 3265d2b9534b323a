from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, UuidPrimaryKey, utcnow


class QboWebhookEvent(UuidPrimaryKey, Base):
    """One entity change QuickBooks told us about, stored once per event id (ids only, no PII)."""

    __tablename__ = "qbo_webhook_events"
    __table_args__ = (
        Index("ix_qbo_webhook_events_unprocessed", "realm_id", "processed_at"),
        Index(
            "ix_qbo_webhook_events_org_id_waiting",
            "org_id",
            "occurred_at",
            postgresql_where=text("processed_at IS NULL"),
        ),
    )

    event_id: Mapped[str] = mapped_column(String(256), unique=True)
    realm_id: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(32))
    operation: Mapped[str] = mapped_column(String(16))
    deleted_id: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The org connected to the company when the change arrived; None: no org is, and the change
    # is kept (processed at once, outcome `realm_not_connected`) but never pulled.
    org_id: Mapped[str | None] = mapped_column(String(128))
    # A pull job that took the change owns it until then; past it (the worker died) another may.
    claimed_until: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    # What became of it: applied, ignored (not an entity qbsync follows), realm_not_connected.
    outcome: Mapped[str | None] = mapped_column(String(32))
