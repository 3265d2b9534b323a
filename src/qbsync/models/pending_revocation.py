from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, SealedTokenColumns, Timestamps, UuidPrimaryKey


class PendingRevocation(UuidPrimaryKey, Timestamps, SealedTokenColumns, Base):
    """A revoke qbsync decided on, written before Intuit is called and kept a day after it landed.

    The pair is sealed like a connection's, bound to this row's id, and shredded once the revoke
    is done. A row not done is retried by a cron with backoff, which first checks that nothing of
    ours holds the company by then. While a row is not done, or was done after a consent's code
    exchange began, that consent may have been ended by it and is not linked.
    """

    __tablename__ = "pending_revocations"

    realm_id: Mapped[str] = mapped_column(String(32), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The attempt being sent (cleared when it ends) and when the last one ended: Intuit may have
    # acted on a revoke at any moment between the two.
    attempt_started_at: Mapped[datetime | None]
    attempt_ended_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
