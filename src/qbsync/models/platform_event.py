from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, JsonDocument, UuidPrimaryKey, utcnow


class PlatformEvent(UuidPrimaryKey, Base):
    """A platform event, stored once per key before it is acknowledged (R1, R2).

    The key (`webhook_id`) is the event's own `id`, else the delivery's `webhook-id` header. Every
    event is kept, an older snapshot arriving late included: the log shows what was sent.
    """

    __tablename__ = "platform_events"
    __table_args__ = (
        Index("ix_platform_events_org_id_kind_platform_id", "org_id", "kind", "platform_id"),
    )

    webhook_id: Mapped[str] = mapped_column(String(256), unique=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(32))
    platform_id: Mapped[str | None] = mapped_column(String(128))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
