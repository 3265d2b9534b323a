from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, Timestamps, UuidPrimaryKey


class OAuthState(UuidPrimaryKey, Timestamps, Base):
    """A pending consent; only the state's SHA-256 is stored, so a database read can't replay it."""

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
