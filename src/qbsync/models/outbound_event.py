from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, JsonDocument, Timestamps, UuidPrimaryKey, enum_column


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class OutboundEvent(UuidPrimaryKey, Timestamps, Base):
    """The outbox of events for the platform; the row id is the Standard Webhooks `webhook-id`."""

    __tablename__ = "outbound_events"
    __table_args__ = (
        Index("ix_outbound_events_status_next_attempt_at", "status", "next_attempt_at"),
        Index(
            "ix_outbound_events_org_id_entity_key_seq_pending",
            "org_id",
            "entity_key",
            "seq",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    org_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    # The entity the event is about (`invoice:inv_1`, `connection`): events of one entity reach
    # the platform in the order they were recorded, `seq` being that order.
    entity_key: Mapped[str | None] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_column(DeliveryStatus, "delivery_status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    # The give-up clock starts at the first real attempt: waiting for an events URL is not ageing.
    first_attempted_at: Mapped[datetime | None]
