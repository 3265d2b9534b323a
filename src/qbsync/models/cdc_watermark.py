from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, Timestamps


class CdcWatermark(Timestamps, Base):
    """How far Change Data Capture has been read for one company."""

    __tablename__ = "cdc_watermarks"

    org_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    realm_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    changed_since: Mapped[datetime]
    last_run_at: Mapped[datetime | None]
