"""Redis failing after a commit loses nothing and fails no request (what was stored is safe)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from qbsync.connections.intuit import IntuitAccess, rate_limit_config
from qbsync.db import Database
from qbsync.models import ConnectionStatus, DeliveryStatus, OutboundEvent
from qbsync.notify import service as notify
from qbsync.qbo import RedisRateLimiter
from qbsync.queue import JobQueue, JobRequest, unit_of_work
from qbsync.settings import Settings
from qbsync.simulator.testing import SimulatorHandle
from qbsync.sync.schedule import PUSH_JOB
from tests.conftest import TokenFactory, bearer
from tests.connections.committed import CommittedApp
from tests.connections.conftest import US_REALM, Consent, load_connection

# Nothing listens on port 1: every command fails the way a Redis that went away does.
DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
async def dead_queue(settings: Settings) -> AsyncIterator[JobQueue]:
    redis = ArqRedis.from_url(DEAD_REDIS, socket_connect_timeout=0.2)
    yield JobQueue(redis, settings.redis.queue_name)
    await redis.aclose()


async def _events(db: Database, org_id: str) -> list[OutboundEvent]:
    async with db.sessions() as session:
        return list(
            await session.scalars(
                select(OutboundEvent)
                .where(OutboundEvent.org_id == org_id)
                .order_by(OutboundEvent.created_at)
                .execution_options(populate_existing=True)
            )
        )


async def test_confirm_and_disconnect_succeed_with_redis_gone(
    consent: Consent,
    app: FastAPI,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    db: Database,
    dead_queue: JobQueue,
) -> None:
    """The enqueue after the commit fails: the answer is the normal one, the event row waits for
    the redrive cron."""
    app.state.queue = dead_queue
    await consent.connect("org_1", US_REALM)
    assert (await load_connection(db)).status is ConnectionStatus.CONNECTED
    response = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "disconnected"
    events = await _events(db, "org_1")
    assert [event.payload["status"] for event in events] == ["connected", "disconnected"]
    assert {event.status for event in events} == {DeliveryStatus.PENDING}
    async with db.sessions() as session:
        # Both are the org's connection events: only the first is due, the second follows it.
        assert await notify.due_event_ids(session) == [events[0].id]


async def test_the_callback_lands_on_the_settings_page_with_redis_gone(
    consent: Consent, app: FastAPI, settings: Settings
) -> None:
    """The shared rate limiter lives in Redis too: its loss is ours to name, not QuickBooks'."""
    dead = ArqRedis.from_url(DEAD_REDIS, socket_connect_timeout=0.2)
    try:
        intuit: IntuitAccess = app.state.intuit
        limiter = RedisRateLimiter(dead, rate_limit_config(settings))
        app.state.intuit = replace(intuit, limiter=limiter)
        landed = await consent.finish(consent.consent(await consent.start()))
    finally:
        await dead.aclose()
    assert landed == {"quickbooks": ["error"], "reason": ["temporarily_unavailable"]}


async def test_a_failed_delivery_keeps_its_retry_with_redis_gone(
    db: Database, dead_queue: JobQueue
) -> None:
    """The deferred retry can't be queued: the row still says when, and the cron re-drives it."""
    async with unit_of_work(db, dead_queue) as session:
        event = notify.record(session, "org_1", "quickbooks.record.synced", {"id": "inv_1"})
    down = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(503)))
    async with down:
        outcome = await notify.deliver(
            db,
            dead_queue,
            down,
            event.id,
            url="http://platform.test/events",
            secret="whsec_dGVzdA==",
        )
    assert outcome is notify.DeliveryOutcome.RETRY
    [stored] = await _events(db, "org_1")
    assert stored.status is DeliveryStatus.PENDING
    assert stored.attempts == 1
    assert stored.next_attempt_at is not None


class _CommitCheckingQueue(JobQueue):
    """Refuses a job whose row another connection can't see yet: enqueued before its commit."""

    def __init__(self, inner: JobQueue, engine: AsyncEngine) -> None:
        super().__init__(inner.redis, inner.queue_name)
        self._engine = engine
        self.checked: list[str] = []

    async def enqueue(self, job: JobRequest) -> bool:
        async with self._engine.connect() as outside:
            if job.function == PUSH_JOB:
                # A push, asked for when the org connected: its connection is committed.
                found = await outside.scalar(
                    text(
                        "SELECT count(*) FROM connections WHERE org_id = :org "
                        "AND status = 'connected'"
                    ),
                    {"org": job.row_id},
                )
            else:
                found = await outside.scalar(
                    text("SELECT count(*) FROM outbound_events WHERE id = :id"),
                    {"id": uuid.UUID(job.row_id)},
                )
        assert found == 1, f"{job.function} was enqueued before its row was committed"
        self.checked.append(job.function)
        return await super().enqueue(job)


async def test_jobs_are_enqueued_only_after_their_rows_are_committed(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    prefix: str,
    database_url: str,
) -> None:
    outside = create_async_engine(database_url, pool_size=1)
    try:
        checking = _CommitCheckingQueue(live.queue, outside)
        live.app.state.queue = checking
        org_id = f"{prefix}order"
        await Consent(live.client, simulator, make_token).connect(org_id, US_REALM)
        response = await live.client.delete(
            "/v1/quickbooks/connection", headers=bearer(make_token(org_id))
        )
        assert response.status_code == 200
        down = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(503)))
        async with down:
            for event in await _events(live.db, org_id):
                await notify.deliver(
                    live.db,
                    checking,
                    down,
                    event.id,
                    url="http://platform.test/events",
                    secret="whsec_dGVzdA==",
                )
    finally:
        await outside.dispose()
    delivered = [name for name in checking.checked if name == notify.DELIVER_JOB]
    assert delivered == [notify.DELIVER_JOB] * 3, (
        "connected, disconnected, one retry: the disconnect waits behind the connect"
    )
    assert PUSH_JOB in checking.checked, "the push the connect asked for"
