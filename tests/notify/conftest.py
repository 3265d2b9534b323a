"""A database whose commits are real, for deliveries that run at the same time as each other."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete

from qbsync.db import Database
from qbsync.models import OutboundEvent
from qbsync.settings import DatabaseSettings

# Orgs of the tests that commit: their rows are deleted when each such test ends.
COMMITTED_ORG_PREFIX = "org_nc_"


@pytest.fixture
async def committed(database_url: str) -> AsyncIterator[Database]:
    """A pool of real connections: the shared test transaction has one connection, so it cannot
    hold a lock against another session, nor run two deliveries at once."""
    db = Database.connect(database_url, DatabaseSettings(pool_size=10, max_overflow=0))
    yield db
    async with db.sessions() as session:
        await session.execute(
            delete(OutboundEvent).where(OutboundEvent.org_id.like(f"{COMMITTED_ORG_PREFIX}%"))
        )
        await session.commit()
    await db.dispose()
