"""Advisory locks for the connection lifecycle, always taken in one order: the org's first, then
its companies' in sorted order, then rows. Two transactions that follow it never deadlock."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


async def lock_org(session: AsyncSession, org_id: str) -> None:
    await session.execute(_LOCK, {"key": f"qbsync:org:{org_id}"})


async def lock_companies(session: AsyncSession, *realm_ids: str) -> None:
    for realm_id in sorted(set(realm_ids)):
        await session.execute(_LOCK, {"key": f"qbsync:realm:{realm_id}"})
