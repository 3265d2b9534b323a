from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, JsonDocument, Timestamps


class CdcWatermark(Timestamps, Base):
    """How far Change Data Capture has been read for one company, and its last reconciliation."""

    __tablename__ = "cdc_watermarks"

    org_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    realm_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # QuickBooks' own time of the last CDC answer applied: the next run reads from here
    # (less an overlap).
    changed_since: Mapped[datetime]
    last_run_at: Mapped[datetime | None]
    # A run owns the company until then, so two runs asked for at once read CDC once; only
    # the run holding `lease_id` may store its outcome (one that outlived its lease may not).
    lease_until: Mapped[datetime | None]
    lease_id: Mapped[str | None] = mapped_column(String(32))
    last_finished_at: Mapped[datetime | None]
    # `cdc`, or `full` when the watermark was older than CDC reaches (30 days).
    last_mode: Mapped[str | None] = mapped_column(String(16))
    # What the last run applied ({invoices, payments, mappings, events, ...}) and the Intuit
    # calls it spent ({core, coreplus}).
    last_applied: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    last_calls: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    last_error: Mapped[str | None] = mapped_column(Text)
