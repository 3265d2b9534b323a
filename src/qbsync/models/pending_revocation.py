from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, SealedTokenColumns, Timestamps, UuidPrimaryKey


class PendingRevocation(UuidPrimaryKey, Timestamps, SealedTokenColumns, Base):
    """A grant Intuit could not be told to revoke yet; a cron retries it with backoff.

    The pair is sealed like a connection's, bound to this row's id. Each retry checks first that
    nothing of ours holds the company by then.
    """

    __tablename__ = "pending_revocations"

    realm_id: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
