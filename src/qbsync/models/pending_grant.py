from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, JsonDocument, SealedTokenColumns, Timestamps, UuidPrimaryKey


class PendingGrant(UuidPrimaryKey, Timestamps, SealedTokenColumns, Base):
    """A consent Intuit granted, held until the user who started it confirms it (S9).

    Only the handle's SHA-256 is stored; the tokens are sealed like a connection's, bound to this
    row's id. A grant nobody confirms in time is revoked (when nothing else of ours holds that
    company), shredded, and deleted a day later.
    """

    __tablename__ = "pending_grants"

    handle_hash: Mapped[str] = mapped_column(String(64), unique=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    realm_id: Mapped[str] = mapped_column(String(32))
    company: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]
    # Just before the code exchange: a revoke for the company finishing after this moment may
    # have ended this grant too.
    exchange_started_at: Mapped[datetime | None]
    # Set by a disconnect or a switch that let the company go while this waited: the revoke that
    # follows ends this grant too (unless something else of ours still holds the company).
    withdrawn_at: Mapped[datetime | None]
