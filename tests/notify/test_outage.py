"""The platform's receiver, a real HTTP server on a loopback port, against real arq workers:
signed deliveries, and a day-long outage played time-scaled."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from pydantic import SecretStr
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from qbsync.db import Database
from qbsync.models import DeliveryStatus, OutboundEvent
from qbsync.notify import service
from qbsync.notify.schemas import OutboundEventType
from qbsync.queue import JobQueue, unit_of_work
from qbsync.settings import Settings
from qbsync.simulator.testing import serving
from qbsync.worker import create_worker
from tests.conftest import drain_worker
from tests.notify.conftest import COMMITTED_ORG_PREFIX
from tests.notify.receiver import Receiver

EVENTS_SECRET = "whsec_b3V0Ym91bmQtZXZlbnRzLXNlY3JldC0wMQ=="
DAY = timedelta(days=1)
# A day of outage lasts three real seconds; every delay and the five days scale alike.
TIME_SCALE = DAY.total_seconds() / 3.0


@contextlib.asynccontextmanager
async def _platform(receiver: Receiver) -> AsyncIterator[str]:
    async with serving(receiver.app()) as base_url:
        yield f"{base_url}/events"


def _delivering_to(settings: Settings, url: str, time_scale: float = 1.0) -> Settings:
    platform = settings.platform.model_copy(
        update={
            "events_url": url,
            "events_secret": SecretStr(EVENTS_SECRET),
            "delivery_time_scale": time_scale,
        }
    )
    return settings.model_copy(update={"platform": platform})


def _worker(
    settings: Settings, db: Database, database_url: str, redis_url: str, max_jobs: int
) -> Worker:
    return create_worker(
        settings,
        database_url,
        redis_url,
        database=db,
        max_jobs=max_jobs,
        poll_delay=0.02,
        handle_signals=False,
    )


async def test_each_delivery_verifies_at_the_receiver_with_the_events_secret(
    db: Database, settings: Settings, database_url: str, redis_url: str, redis: ArqRedis
) -> None:
    """The receiver checks the raw body and headers with `standardwebhooks`, as the platform
    does; the events secret signs them, not the inbound webhook secret."""
    receiver = Receiver(EVENTS_SECRET)
    queue = JobQueue(redis, settings.redis.queue_name)
    org_id = f"org_sig_{uuid.uuid4().hex[:6]}"
    async with unit_of_work(db, queue) as session:
        recorded = [
            service.record(
                session,
                org_id,
                "quickbooks.record.synced",
                {"kind": "invoice", "platform_id": "inv_1", "note": "naïve £ ✓"},
                entity_key=service.entity_key("invoice", "inv_1"),
            ),
            service.record(
                session,
                org_id,
                "quickbooks.connection.updated",
                {"status": "connected"},
                entity_key=service.CONNECTION_KEY,
            ),
        ]
    async with _platform(receiver) as url:
        configured = _delivering_to(settings, url)
        # One job at a time: the test's shared transaction has a single connection.
        await drain_worker(_worker(configured, db, database_url, redis_url, 1), redis)

    assert receiver.bad_signatures == []
    mine = [payload for payload in receiver.accepted if payload["organization_id"] == org_id]
    assert sorted(payload["id"] for payload in mine) == sorted(str(event.id) for event in recorded)
    assert {"kind": "invoice", "platform_id": "inv_1", "note": "naïve £ ✓"} in [
        payload["data"] for payload in mine
    ]
    inbound = Webhook(settings.platform.webhook_secret.get_secret_value())
    for body, headers in receiver.raw:
        assert json.loads(body)["id"] == headers["webhook-id"]
        with pytest.raises(WebhookVerificationError):
            inbound.verify(body, headers)


async def _pending(db: Database, org_id: str) -> int:
    async with db.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboundEvent)
            .where(OutboundEvent.org_id == org_id, OutboundEvent.status == DeliveryStatus.PENDING)
        )
    return count or 0


async def test_a_day_long_receiver_outage_loses_nothing_and_keeps_each_entitys_order(
    committed: Database, settings: Settings, database_url: str, redis_url: str, redis: ArqRedis
) -> None:
    """R11: the platform's receiver answers 503 for a day (time-scaled), then 200. Two workers
    retry through it with backoff: every event arrives once, each entity's in the order they
    were recorded, none dead, and an event behind another is never attempted while it waits."""
    org_id = f"{COMMITTED_ORG_PREFIX}{uuid.uuid4().hex[:8]}"
    day = DAY.total_seconds() / TIME_SCALE
    receiver = Receiver(EVENTS_SECRET, down_for=day)
    queue = JobQueue(redis, settings.redis.queue_name)
    keys: list[str | None] = [
        service.entity_key("invoice", "inv_1"),
        service.entity_key("invoice", "inv_2"),
        service.entity_key("client", "cl_1"),
        service.CONNECTION_KEY,
        None,
    ]
    types: dict[str | None, OutboundEventType] = {
        keys[0]: "quickbooks.invoice.payment_updated",
        keys[1]: "quickbooks.record.synced",
        keys[2]: "quickbooks.record.failed",
        keys[3]: "quickbooks.connection.updated",
        None: "quickbooks.record.synced",
    }
    recorded: list[OutboundEvent] = []

    async def record_round(n: int) -> None:
        # One transaction per round, the entities interleaved within it.
        async with unit_of_work(committed, queue) as session:
            recorded.extend(
                service.record(session, org_id, types[key], {"round": n}, entity_key=key)
                for key in keys
            )

    for n in range(3):
        await record_round(n)
    async with _platform(receiver) as url:
        configured = _delivering_to(settings, url, TIME_SCALE)
        workers = [_worker(configured, committed, database_url, redis_url, 10) for _ in range(2)]
        tasks = [asyncio.create_task(worker.main()) for worker in workers]
        try:
            await asyncio.sleep(day / 2)
            for n in range(3, 5):
                await record_round(n)  # more events arrive in the middle of the outage
            async with asyncio.timeout(day + 10):
                while await _pending(committed, org_id):
                    await asyncio.sleep(0.05)
                    for task in tasks:
                        if task.done():
                            task.result()
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for worker in workers:
                await worker.close()

    assert receiver.bad_signatures == []
    assert receiver.refused > 0
    delivered = [id_ for id_ in receiver.accepted_ids() if id_ in {str(e.id) for e in recorded}]
    assert Counter(delivered) == Counter(str(event.id) for event in recorded), (
        "every event delivered, none twice"
    )
    async with committed.sessions() as session:
        stored = {
            event.id: event
            for event in await session.scalars(
                select(OutboundEvent).where(OutboundEvent.org_id == org_id)
            )
        }
    assert {event.status for event in stored.values()} == {DeliveryStatus.DELIVERED}
    for key in keys[:-1]:
        in_order = [stored[event.id] for event in recorded if event.entity_key == key]
        assert [event.seq for event in in_order] == sorted(event.seq for event in in_order)
        arrived = [id_ for id_ in delivered if id_ in {str(event.id) for event in in_order}]
        assert arrived == [str(event.id) for event in in_order], f"{key} out of order"
        for earlier, later in itertools.pairwise(arrived):
            assert receiver.arrived_after_answer(earlier, later)
        head, *behind = in_order
        assert head.attempts > 5, "the first event was retried through the day"
        assert head.first_attempted_at is not None
        assert head.delivered_at is not None
        # The day runs from the first request; every head was first tried early in it.
        assert (head.delivered_at - head.first_attempted_at).total_seconds() >= day * 0.75
        assert [event.attempts for event in behind] == [1] * len(behind), (
            "an event behind another is not attempted while it waits"
        )
    unordered = [stored[event.id] for event in recorded if event.entity_key is None]
    assert all(event.attempts > 5 for event in unordered[:3])


async def test_the_time_scale_shortens_the_retry_delays_and_the_five_days_alike(
    db: Database, settings: Settings, redis: ArqRedis
) -> None:
    """Scaled so that five days last half a second: the first retry waits its 10 s scaled, an
    attempt within the scaled five days is retried, and one past them gives up."""
    scale = service.GIVE_UP_AFTER.total_seconds() / 0.5
    queue = JobQueue(redis, settings.redis.queue_name)
    async with unit_of_work(db, queue) as session:
        event = service.record(session, "org_1", "quickbooks.record.synced", {"n": 1})
    down = Receiver(EVENTS_SECRET, down_for=60)
    async with _platform(down) as url, httpx.AsyncClient() as http:
        attempt = functools.partial(
            service.deliver, db, queue, http, event.id, url=url, secret=EVENTS_SECRET
        )
        assert await attempt(time_scale=scale) is service.DeliveryOutcome.RETRY
        async with db.sessions() as session:
            stored = await session.get(OutboundEvent, event.id, populate_existing=True)
        assert stored is not None
        assert stored.next_attempt_at is not None
        assert stored.first_attempted_at is not None
        waited = stored.next_attempt_at - stored.first_attempted_at
        assert waited < timedelta(seconds=1)
        assert waited * scale >= service.RETRY_DELAYS[0]
        await asyncio.sleep(0.1)
        assert await attempt(time_scale=scale) is service.DeliveryOutcome.RETRY
        await asyncio.sleep(0.45)
        assert await attempt(time_scale=scale) is service.DeliveryOutcome.DEAD
