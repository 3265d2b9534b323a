"""Outbound events: stored first, enqueued after commit, delivered by a real arq worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import timedelta
from typing import cast

import httpx
import respx
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook

from qbsync.context import WorkerContext
from qbsync.db import Database
from qbsync.models import DeliveryStatus, OutboundEvent
from qbsync.models.base import utcnow
from qbsync.notify import service
from qbsync.notify.tasks import redrive_outbound_events
from qbsync.queue import JobQueue, take_pending, unit_of_work
from qbsync.settings import Settings
from qbsync.worker import create_worker
from tests.conftest import drain_worker
from tests.notify.conftest import COMMITTED_ORG_PREFIX

EVENTS_URL = "http://platform.test/events"
SECRET = "whsec_dGVzdC1zZWNyZXQ="


def _failing_platform() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(500)))


async def _run_worker(
    settings: Settings, db: Database, database_url: str, redis_url: str, redis: ArqRedis
) -> None:
    worker = create_worker(
        settings,
        database_url,
        redis_url,
        database=db,
        max_jobs=1,
        poll_delay=0.05,
        handle_signals=False,
    )
    await drain_worker(worker, redis)


async def _reload(db: Database, event_id: uuid.UUID) -> OutboundEvent:
    async with db.sessions() as session:
        event = await session.get(OutboundEvent, event_id, populate_existing=True)
        assert event is not None
        return event


async def test_an_event_is_enqueued_after_commit_and_delivered_signed(
    db: Database, settings: Settings, redis: ArqRedis, database_url: str, redis_url: str
) -> None:
    queue = JobQueue(redis, settings.redis.queue_name)
    async with unit_of_work(db, queue) as session:
        event = service.record(
            session, "org_1", "quickbooks.connection.updated", {"status": "connected"}
        )
        assert await redis.zcard(settings.redis.queue_name) == 0, "nothing queued before commit"
    assert await redis.zcard(settings.redis.queue_name) == 1

    with respx.mock:
        route = respx.post(EVENTS_URL).mock(return_value=httpx.Response(204))
        await _run_worker(settings, db, database_url, redis_url, redis)

    delivered = await _reload(db, event.id)
    assert delivered.status is DeliveryStatus.DELIVERED
    assert delivered.attempts == 1
    assert route.call_count == 1
    request = route.calls.last.request
    secret = settings.platform.webhook_secret.get_secret_value()
    payload = Webhook(secret).verify(request.content, dict(request.headers))
    assert payload["type"] == "quickbooks.connection.updated"
    assert payload["organization_id"] == "org_1"
    assert payload["data"] == {"status": "connected"}
    assert request.headers["webhook-id"] == str(event.id)


async def test_a_rolled_back_request_enqueues_nothing(
    db: Database, settings: Settings, redis: ArqRedis
) -> None:
    queue = JobQueue(redis, settings.redis.queue_name)
    try:
        async with unit_of_work(db, queue) as session:
            service.record(session, "org_1", "quickbooks.record.failed", {"id": "inv_1"})
            raise RuntimeError("the request failed after writing")
    except RuntimeError:
        pass
    assert await redis.zcard(settings.redis.queue_name) == 0
    async with db.sessions() as session:
        assert await service.due_event_ids(session) == []


async def test_a_failed_delivery_is_retried_later_not_dropped(
    db: Database, settings: Settings, redis: ArqRedis, database_url: str, redis_url: str
) -> None:
    """R11: the receiver is down; the event stays pending with a later attempt scheduled."""
    queue = JobQueue(redis, settings.redis.queue_name)
    async with unit_of_work(db, queue) as session:
        event = service.record(session, "org_1", "quickbooks.record.synced", {"id": "inv_1"})

    with respx.mock:
        respx.post(EVENTS_URL).mock(return_value=httpx.Response(503))
        await _run_worker(settings, db, database_url, redis_url, redis)

    pending = await _reload(db, event.id)
    assert pending.status is DeliveryStatus.PENDING
    assert pending.attempts == 1
    assert pending.last_error == "the platform answered HTTP 503"
    assert pending.next_attempt_at is not None
    assert pending.next_attempt_at > utcnow() + timedelta(seconds=5)
    queued = [
        (job_id, run_at_ms)
        for job_id, run_at_ms in await redis.zrange(
            settings.redis.queue_name, 0, -1, withscores=True
        )
        # A cron falling due while the worker ran may wait in the queue too.
        if job_id.startswith(service.DELIVER_JOB.encode())
    ]
    assert len(queued) == 1, "one deferred retry waits in the queue"
    _, run_at_ms = queued[0]
    assert run_at_ms / 1000 > utcnow().timestamp() + 5


async def test_events_whose_jobs_were_lost_are_redriven_from_postgres(
    db: Database, settings: Settings, database_url: str, redis_url: str, redis: ArqRedis
) -> None:
    """R5: Redis forgot the job; the cron re-drives the pending row from Postgres."""
    async with db.sessions() as session:
        event = service.record(session, "org_1", "quickbooks.record.synced", {"id": "inv_2"})
        await session.commit()
        take_pending(session)

    with respx.mock:
        route = respx.post(EVENTS_URL).mock(return_value=httpx.Response(200))
        await _run_worker(settings, db, database_url, redis_url, redis)

    assert (await _reload(db, event.id)).status is DeliveryStatus.DELIVERED
    assert json.loads(route.calls.last.request.content)["data"] == {"id": "inv_2"}


async def _first_attempted_days_ago(db: Database, event_id: uuid.UUID, days: int) -> None:
    """Make the event's first attempt that old, and its next one due now."""
    async with db.sessions() as session:
        await session.execute(
            update(OutboundEvent)
            .where(OutboundEvent.id == event_id)
            .values(first_attempted_at=utcnow() - timedelta(days=days), next_attempt_at=utcnow())
        )
        await session.commit()


async def test_an_event_gives_up_only_after_days_of_attempts(
    db: Database, settings: Settings, redis: ArqRedis
) -> None:
    """R11: a day-long outage is retried through; only five days after the first attempt is an
    event dead."""
    queue = JobQueue(redis, settings.redis.queue_name)
    async with unit_of_work(db, queue) as session:
        event = service.record(session, "org_1", "quickbooks.record.synced", {"id": "inv_3"})
        event.created_at = utcnow() - timedelta(days=30)
    async with _failing_platform() as http:
        outcome = await service.deliver(
            db, queue, http, event.id, url=EVENTS_URL, secret="whsec_dGVzdA=="
        )
        assert outcome is service.DeliveryOutcome.RETRY, (
            "a month before the first attempt is not age"
        )
        await _first_attempted_days_ago(db, event.id, 1)
        outcome = await service.deliver(
            db, queue, http, event.id, url=EVENTS_URL, secret="whsec_dGVzdA=="
        )
        assert outcome is service.DeliveryOutcome.RETRY
        await _first_attempted_days_ago(db, event.id, 6)
        outcome = await service.deliver(
            db, queue, http, event.id, url=EVENTS_URL, secret="whsec_dGVzdA=="
        )
        assert outcome is service.DeliveryOutcome.DEAD


async def test_a_delivery_killed_mid_post_is_redriven_once_its_claim_lapses(
    committed: Database, settings: Settings, database_url: str, redis_url: str, redis: ArqRedis
) -> None:
    """R4/R11: the worker running an event's re-drive job died while the platform held the POST.
    arq keeps that job's id (and its in-progress mark) until its own timeout, minutes away; the
    next re-drive, once the claim lapsed, still gets the event delivered at once."""
    db = committed
    queue = JobQueue(redis, settings.redis.queue_name)
    async with db.sessions() as session:
        event = service.record(
            session, f"{COMMITTED_ORG_PREFIX}redrive", "quickbooks.record.synced", {"id": "inv_3"}
        )
        await session.commit()
        take_pending(session)
    ctx = cast(WorkerContext, {"settings": settings, "db": db, "queue": queue})
    assert await redrive_outbound_events(ctx) >= 1
    queued = await redis.zrange(settings.redis.queue_name, 0, -1)
    (job_id,) = [job.decode() for job in queued if str(event.id) in job.decode()]
    # What SIGKILL leaves: arq's mark that the job runs, and our claim of the attempt.
    await redis.psetex(in_progress_key_prefix + job_id, 310_000, b"1")
    posted = asyncio.Event()

    async def hold(_: httpx.Request) -> httpx.Response:
        posted.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with httpx.AsyncClient(transport=httpx.MockTransport(hold)) as held:
        dying = asyncio.create_task(
            service.deliver(db, queue, held, event.id, url=EVENTS_URL, secret=SECRET)
        )
        await posted.wait()
        dying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dying
    async with db.sessions() as session:
        await session.execute(
            update(OutboundEvent)
            .where(OutboundEvent.id == event.id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()

    # The worker's start runs the re-drive cron: the next run, a second later than the first.
    await asyncio.sleep(1.0)
    worker = create_worker(
        settings, database_url, redis_url, database=db, poll_delay=0.05, handle_signals=False
    )
    with respx.mock:
        route = respx.post(EVENTS_URL).mock(return_value=httpx.Response(200))
        running = asyncio.create_task(worker.main())
        try:
            deadline = time.monotonic() + 10
            # Until delivered, and the worker's jobs (the delivery's, a cron) have finished.
            while (await _reload(db, event.id)).status is DeliveryStatus.PENDING or worker.tasks:
                assert time.monotonic() < deadline, "still pending 10 s after its claim lapsed"
                await asyncio.sleep(0.05)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await worker.close()
    assert (await _reload(db, event.id)).status is DeliveryStatus.DELIVERED
    assert route.call_count == 1
