"""Delivery holds no pooled connection while the platform answers (R13), and waits for a URL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import delete, select

from qbsync.db import Database
from qbsync.models import DeliveryStatus, OutboundEvent
from qbsync.notify import service
from qbsync.notify.tasks import redrive_outbound_events
from qbsync.queue import JobQueue, unit_of_work
from qbsync.settings import DatabaseSettings, Settings
from tests.pool_guard import PoolGuard

POOL = 3
EVENTS_URL = "http://platform.test/events"
SECRET = "whsec_dGVzdC1zZWNyZXQ="


@pytest.fixture
async def pooled(database_url: str) -> AsyncIterator[Database]:
    db = Database.connect(
        database_url, DatabaseSettings(pool_size=POOL, max_overflow=0, pool_timeout_seconds=20)
    )
    yield db
    async with db.sessions() as session:
        await session.execute(delete(OutboundEvent).where(OutboundEvent.org_id.like("org_nd_%")))
        await session.commit()
    await db.dispose()


async def test_deliveries_beyond_the_pool_to_a_slow_platform_all_arrive_once(
    pooled: Database, settings: Settings, redis: ArqRedis
) -> None:
    """R13: four times the pool of deliveries, each POST taking 0.3 s: every event is delivered
    once, no delivery holds a connection across its POST, and each attempt is claimed once."""
    queue = JobQueue(redis, settings.redis.queue_name)
    org_id = f"org_nd_{uuid.uuid4().hex[:6]}"
    async with unit_of_work(pooled, queue) as session:
        events = [
            service.record(session, org_id, "quickbooks.record.synced", {"n": n})
            for n in range(4 * POOL)
        ]
    received: list[str] = []

    async def slow_platform(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)
        received.append(request.headers["webhook-id"])
        return httpx.Response(204)

    guard = PoolGuard(pooled.engine)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(slow_platform)) as http:
            guard.watch(http)
            # Each event twice at once: a redrive racing the first job must not send it again.
            outcomes = await asyncio.gather(
                *(
                    service.deliver(pooled, queue, http, event.id, url=EVENTS_URL, secret=SECRET)
                    for event in events + events
                )
            )
    finally:
        guard.close()
    assert sorted(outcome.value for outcome in outcomes) == sorted(
        ["delivered"] * 4 * POOL + ["skipped"] * 4 * POOL
    )
    assert sorted(received) == sorted(str(event.id) for event in events)
    assert guard.violations == []
    async with pooled.sessions() as session:
        stored = list(
            await session.scalars(select(OutboundEvent).where(OutboundEvent.org_id == org_id))
        )
    assert {(event.status, event.attempts) for event in stored} == {(DeliveryStatus.DELIVERED, 1)}


async def test_events_wait_without_ageing_while_no_url_is_set(
    db: Database, settings: Settings, redis: ArqRedis
) -> None:
    """No URL is not a failed attempt: nothing counts, nothing is scheduled, nothing dies."""
    queue = JobQueue(redis, settings.redis.queue_name)
    async with unit_of_work(db, queue) as session:
        event = service.record(session, "org_1", "quickbooks.record.synced", {"id": "inv_9"})
    async with httpx.AsyncClient() as http:
        outcome = await service.deliver(db, queue, http, event.id, url=None, secret=SECRET)
    assert outcome is service.DeliveryOutcome.WAITING
    async with db.sessions() as session:
        stored = await session.get(OutboundEvent, event.id, populate_existing=True)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.first_attempted_at, stored.last_error) == (
        DeliveryStatus.PENDING,
        0,
        None,
        None,
    )
    unset = settings.model_copy(
        update={"platform": settings.platform.model_copy(update={"events_url": None})}
    )
    ctx = {"settings": unset, "db": db, "queue": queue}
    assert await redrive_outbound_events(ctx) == 0  # type: ignore[arg-type]
    ctx["settings"] = settings
    assert await redrive_outbound_events(ctx) >= 1  # type: ignore[arg-type]
