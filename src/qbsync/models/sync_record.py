from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, JsonDocument, Timestamps, UuidPrimaryKey, enum_column


class RecordKind(enum.StrEnum):
    CLIENT = "client"
    INVOICE = "invoice"
    EXPENSE = "expense"
    PAYMENT = "payment"


class RecordStatus(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SYNCED = "synced"
    FAILED = "failed"
    HELD = "held"
    NOT_PUSHED = "not_pushed"
    IGNORED = "ignored"


class SyncRecord(UuidPrimaryKey, Timestamps, Base):
    """The outbox: the latest platform snapshot of one entity and how far it got into QuickBooks."""

    __tablename__ = "sync_records"
    __table_args__ = (
        UniqueConstraint("org_id", "kind", "platform_id"),
        Index("ix_sync_records_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_sync_records_org_id_status", "org_id", "status"),
        Index("ix_sync_records_org_id_kind_qbo_id", "org_id", "kind", "qbo_id"),
    )

    org_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[RecordKind] = mapped_column(enum_column(RecordKind, "record_kind"))
    platform_id: Mapped[str] = mapped_column(String(128))
    operation: Mapped[str] = mapped_column(String(16), default="upsert")
    snapshot: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    # When the platform produced `snapshot`: an older one arriving late never replaces it.
    snapshot_occurred_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)
    synced_version: Mapped[int | None]
    status: Mapped[RecordStatus] = mapped_column(
        enum_column(RecordStatus, "record_status"), default=RecordStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    realm_id: Mapped[str | None] = mapped_column(String(32))
    qbo_id: Mapped[str | None] = mapped_column(String(32))
    qbo_sync_token: Mapped[str | None] = mapped_column(String(16))
    qbo_doc_number: Mapped[str | None] = mapped_column(String(32))
    # What `qbo_id` is in QuickBooks (Customer, Invoice, Bill, Purchase, Payment): an expense is
    # a Bill or a Purchase as the settings said when it was first pushed.
    qbo_entity: Mapped[str | None] = mapped_column(String(32))
    synced_at: Mapped[datetime | None]
    # Non-blocking findings of the last push (e.g. `total_differs`), each {code, message, ...}.
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(
        JsonDocument, default=list, server_default=text("'[]'")
    )
    # A write sent to QuickBooks whose outcome is not recorded yet: set (and committed) before
    # the call, cleared with its outcome. Found set, the write may have landed (a worker killed
    # mid-call, a lost response), so the next attempt looks the document up before creating.
    write_started_at: Mapped[datetime | None]
    write_requestid: Mapped[str | None] = mapped_column(String(50))
    # Set by a retry: push this record now even though the settings would not (`not_pushed`).
    force_push: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # Set when QuickBooks voided (`voided`) or deleted (`deleted`) the document on its own: a
    # later platform change fails `deleted_in_quickbooks` rather than create it again, until a
    # person retries it on purpose.
    removed_in_quickbooks: Mapped[str | None] = mapped_column(String(16))
    removed_in_quickbooks_at: Mapped[datetime | None]
    # An invoice's payment status as QuickBooks last showed it (unpaid, partially_paid, paid,
    # voided, deleted), and the whole derived state the platform was sent, with the version
    # (QuickBooks SyncTokens) that orders observations of it.
    payment_status: Mapped[str | None] = mapped_column(String(16))
    payment_state: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
