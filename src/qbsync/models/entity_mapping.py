from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, JsonDocument, Timestamps, UuidPrimaryKey, enum_column


class MappingKind(enum.StrEnum):
    CLIENT = "client"
    SERVICE = "service"
    TAX_RATE = "tax_rate"
    EXPENSE_CATEGORY = "expense_category"
    SUPPLIER = "supplier"


class MappingSource(enum.StrEnum):
    MANUAL = "manual"
    MATCHED = "matched"
    CREATED = "created"


class EntityMapping(UuidPrimaryKey, Timestamps, Base):
    """A platform id paired with a QuickBooks id inside one company (ids mean nothing elsewhere)."""

    __tablename__ = "entity_mappings"
    __table_args__ = (
        UniqueConstraint("org_id", "realm_id", "kind", "platform_id"),
        Index("ix_entity_mappings_org_realm_kind_qbo", "org_id", "realm_id", "kind", "qbo_id"),
        # One QuickBooks customer stands for one platform client, even when two requests race.
        Index(
            "uq_entity_mappings_client_customer",
            "org_id",
            "realm_id",
            "qbo_id",
            unique=True,
            postgresql_where=text("kind = 'client' AND archived_at IS NULL"),
        ),
    )

    org_id: Mapped[str] = mapped_column(String(128))
    realm_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[MappingKind] = mapped_column(enum_column(MappingKind, "mapping_kind"))
    platform_id: Mapped[str] = mapped_column(String(128))
    qbo_id: Mapped[str] = mapped_column(String(32))
    qbo_name: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[MappingSource] = mapped_column(
        enum_column(MappingSource, "mapping_source"), default=MappingSource.MANUAL
    )
    details: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    archived_at: Mapped[datetime | None]
