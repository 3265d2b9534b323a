"""qbsync on a real connection pool, for tests that need real concurrency (races, R13).

The usual fixtures run each test inside one rolled-back transaction, which serialises everything
on one connection. These apps commit for real, through a pool as small as the test asks, and the
rows of the test's orgs are deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import httpx
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy import delete

from qbsync.connections.intuit import IntuitAccess
from qbsync.db import Database
from qbsync.main import create_app
from qbsync.models import (
    CatalogueEntry,
    CdcWatermark,
    Connection,
    EntityMapping,
    OAuthState,
    OutboundEvent,
    PendingGrant,
    PendingRevocation,
    PlatformEvent,
    QboWebhookEvent,
    SyncRecord,
    SyncSettings,
)
from qbsync.models.base import utcnow
from qbsync.queue import JobQueue
from qbsync.settings import DatabaseSettings, Settings
from tests.pool_guard import PoolGuard


@dataclass
class CommittedApp:
    app: FastAPI
    client: httpx.AsyncClient
    db: Database
    guard: PoolGuard

    @property
    def intuit(self) -> IntuitAccess:
        intuit: IntuitAccess = self.app.state.intuit
        return intuit

    @property
    def queue(self) -> JobQueue:
        queue: JobQueue = self.app.state.queue
        return queue


def org_prefix() -> str:
    return f"org_c{uuid.uuid4().hex[:8]}_"


async def remove_orgs(db: Database, prefix: str, since: datetime) -> None:
    """The test's rows: its orgs', and the revokes it recorded (a ledger keyed by company)."""
    async with db.sessions() as session:
        await session.execute(
            delete(PendingRevocation).where(PendingRevocation.created_at >= since)
        )
        for model in (
            Connection,
            PendingGrant,
            OAuthState,
            OutboundEvent,
            SyncRecord,
            EntityMapping,
            SyncSettings,
            PlatformEvent,
            CatalogueEntry,
            QboWebhookEvent,
            CdcWatermark,
        ):
            await session.execute(delete(model).where(model.org_id.like(f"{prefix}%")))
        await session.commit()


@asynccontextmanager
async def committed_app(
    settings: Settings,
    database_url: str,
    redis: ArqRedis,
    prefix: str,
    *,
    pool_size: int = 5,
) -> AsyncIterator[CommittedApp]:
    started = utcnow()
    database = DatabaseSettings(pool_size=pool_size, max_overflow=0, pool_timeout_seconds=20)
    db = Database.connect(database_url, database)
    guard = PoolGuard(db.engine)
    app = create_app(settings, database=db, redis=redis)
    try:
        async with app.router.lifespan_context(app):
            guard.watch(app.state.http)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://qbsync.test"
            ) as client:
                yield CommittedApp(app, client, db, guard)
    finally:
        guard.close()
        await remove_orgs(db, prefix, started)
        await db.dispose()
