from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, JsonDocument, Timestamps, UuidPrimaryKey, enum_column


class CatalogueKind(enum.StrEnum):
    SERVICE = "service"
    TAX_RATE = "tax_rate"


class CatalogueEntry(UuidPrimaryKey, Timestamps, Base):
    """The platform's latest snapshot of a service or tax rate, for mapping, preview and push."""

    __tablename__ = "catalogue_entries"
    __table_args__ = (UniqueConstraint("org_id", "kind", "platform_id"),)

    org_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[CatalogueKind] = mapped_column(enum_column(CatalogueKind, "catalogue_kind"))
    platform_id: Mapped[str] = mapped_column(String(128))
    snapshot: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    occurred_at: Mapped[datetime]
    deleted: Mapped[bool] = mapped_column(default=False)
