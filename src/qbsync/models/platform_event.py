from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, JsonDocument, UuidPrimaryKey, utcnow


class PlatformEvent(UuidPrimaryKey, Base):
    """A platform event, stored once per `webhook-id` before it is acknowledged (R1, R2)."""

    __tablename__ = "platform_events"

    webhook_id: Mapped[str] = mapped_column(String(256), unique=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
