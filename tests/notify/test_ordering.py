"""Events about one entity reach the platform in the order they were recorded; a blocked event
waits without being attempted or ageing, and goes as soon as the one before it is delivered or
dead. Events without an entity key are unordered."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import timedelta

import httpx
import respx
from arq.connections import ArqRedis
from sqlalchemy import select, update

from qbsync.db import Database
from qbsync.models import DeliveryStatus, OutboundEvent
from qbsync.models.base import utcnow
from qbsync.notify import service
from qbsync.notify.service import DeliveryOutcome
from qbsync.queue import JobQueue, take_pending, unit_of_work
from qbsync.settings import Settings
from qbsync.worker import create_worker
from tests.conftest import drain_worker
from tests.notify.conftest import COMMITTED_ORG_PREFIX

EVENTS_URL = "http://platform.test/events"
SECRET = "whsec_dGVzdC1zZWNyZXQ="
INVOICE = service.entity_key("invoice", "inv_1")


def _org() -> str:
    return f"{COMMITTED_ORG_PREFIX}{uuid.uuid4().hex[:8]}"


def _answering(status: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(status)))


async def _reload(db: Database, event_id: uuid.UUID) -> OutboundEvent:
    async with db.sessions() as session:
        event = await session.get(OutboundEvent, event_id, populate_existing=True)
        assert event is not None
        return event


async def _queued(redis: ArqRedis, settings: Settings, job_id: str) -> bool:
    return await redis.zscore(settings.redis.queue_name, job_id) is not None


def test_an_entity_key_names_the_kind_and_the_platform_id() -> None:
    assert service.entity_key("invoice", "inv_1") == "invoice:inv_1"


async def test_the_second_event_waits_for_the_first_to_be_acknowledged(
    committed: Database, settings: Settings, redis: ArqRedis
) -> None:
    """Two workers deliver an invoice's first and second events at the same moment: the second
    is not sent while the first is pending, and is enqueued the moment the first is delivered."""
    queue = JobQueue(redis, settings.redis.queue_name)
    org_id = _org()
    async with unit_of_work(committed, queue) as session:
        first = service.record(
            session, org_id, "quickbooks.record.synced", {"n": 1}, entity_key=INVOICE
        )
        second = service.record(
            session, org_id, "quickbooks.invoice.payment_updated", {"n": 2}, entity_key=INVOICE
        )
    sent: list[str] = []

    async def slow_platform(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["webhook-id"])
        await asyncio.sleep(0.2)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_platform)) as http:
        outcomes = await asyncio.gather(
            *(
                service.deliver(committed, queue, http, event.id, url=EVENTS_URL, secret=SECRET)
                for event in (first, second)
            )
        )
        assert outcomes == [DeliveryOutcome.DELIVERED, DeliveryOutcome.BLOCKED]
        assert sent == [str(first.id)]
        waiting = await _reload(committed, second.id)
        assert (waiting.status, waiting.attempts, waiting.first_attempted_at) == (
            DeliveryStatus.PENDING,
            0,
            None,
        ), "a blocked event is not attempted and does not age"
        assert await _queued(redis, settings, f"{service.DELIVER_JOB}:{second.id}:after:{first.id}")
        outcome = await service.deliver(
            committed, queue, http, second.id, url=EVENTS_URL, secret=SECRET
        )
    assert outcome is DeliveryOutcome.DELIVERED
    assert sent == [str(first.id), str(second.id)]


async def test_concurrent_deliveries_of_interleaved_entities_keep_each_entitys_order(
    committed: Database, settings: Settings, redis: ArqRedis
) -> None:
    """Every pending event delivered twice at once, round after round, as racing workers and
    redrives would: each entity's events arrive one at a time, each after the one before it
    was answered, while entities do not wait for each other."""
    queue = JobQueue(redis, settings.redis.queue_name)
    org_id = _org()
    keys = [service.entity_key("invoice", f"inv_{n}") for n in range(4)]
    async with unit_of_work(committed, queue) as session:
        events = [
            service.record(session, org_id, "quickbooks.record.synced", {"n": n}, entity_key=key)
            for n in range(4)
            for key in keys
        ]
    log: list[tuple[str, str]] = []

    async def slow_platform(request: httpx.Request) -> httpx.Response:
        log.append(("arrived", request.headers["webhook-id"]))
        await asyncio.sleep(0.05)
        log.append(("answered", request.headers["webhook-id"]))
        return httpx.Response(200)

    delivered = 0
    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_platform)) as http:
        for _ in range(len(events)):
            async with committed.sessions() as session:
                pending = list(
                    await session.scalars(
                        select(OutboundEvent.id).where(
                            OutboundEvent.org_id == org_id,
                            OutboundEvent.status == DeliveryStatus.PENDING,
                        )
                    )
                )
            if not pending:
                break
            outcomes = await asyncio.gather(
                *(
                    service.deliver(committed, queue, http, event_id, url=EVENTS_URL, secret=SECRET)
                    for event_id in pending + pending
                )
            )
            delivered += outcomes.count(DeliveryOutcome.DELIVERED)
    assert delivered == len(events), "each event delivered once"
    for key in keys:
        ids = [str(event.id) for event in events if event.entity_key == key]
        for earlier, later in itertools.pairwise(ids):
            answered = log.index(("answered", earlier))
            assert log.index(("arrived", later)) > answered
    assert sorted(entry for kind, entry in log if kind == "answered") == sorted(
        str(event.id) for event in events
    )


async def test_a_claim_waits_for_its_keys_settle_in_flight_and_then_goes(
    committed: Database, settings: Settings, redis: ArqRedis
) -> None:
    """The first event's settle looked for a follower before the second was recorded, and has
    not committed yet. The second's claim waits for that settle rather than find the first still
    pending: otherwise nobody would wake it until the next cron."""
    queue = JobQueue(redis, settings.redis.queue_name)
    org_id = _org()
    async with unit_of_work(committed, queue) as session:
        first = service.record(
            session, org_id, "quickbooks.record.synced", {"n": 1}, entity_key=INVOICE
        )
    async with _answering(200) as http, committed.sessions() as settling:
        assert await service._settle(settling, first.id, None, 1.0) is DeliveryOutcome.DELIVERED
        assert take_pending(settling) == [], "no follower existed yet"
        async with unit_of_work(committed, queue) as session:
            second = service.record(
                session, org_id, "quickbooks.record.failed", {"n": 2}, entity_key=INVOICE
            )
        claim = asyncio.create_task(
            service.deliver(committed, queue, http, second.id, url=EVENTS_URL, secret=SECRET)
        )
        await asyncio.sleep(0.3)
        assert not claim.done(), "the claim waits for the settle of its key"
        await settling.commit()
        assert await claim is DeliveryOutcome.DELIVERED


async def _age_first_attempt(db: Database, event_id: uuid.UUID, days: int) -> None:
    async with db.sessions() as session:
        await session.execute(
            update(OutboundEvent)
            .where(OutboundEvent.id == event_id)
            .values(first_attempted_at=utcnow() - timedelta(days=days), next_attempt_at=utcnow())
        )
        await session.commit()


async def test_a_dead_event_lets_the_next_one_of_its_entity_go(
    db: Database, settings: Settings, redis: ArqRedis
) -> None:
    queue = JobQueue(redis, settings.redis.queue_name)
    async with unit_of_work(db, queue) as session:
        first = service.record(
            session, "org_1", "quickbooks.record.synced", {"n": 1}, entity_key=INVOICE
        )
        second = service.record(
            session, "org_1", "quickbooks.invoice.payment_updated", {"n": 2}, entity_key=INVOICE
        )
    async with _answering(503) as down:
        assert (
            await service.deliver(db, queue, down, first.id, url=EVENTS_URL, secret=SECRET)
            is DeliveryOutcome.RETRY
        )
        await _age_first_attempt(db, first.id, 6)
        assert (
            await service.deliver(db, queue, down, first.id, url=EVENTS_URL, secret=SECRET)
            is DeliveryOutcome.DEAD
        )
    assert await _queued(redis, settings, f"{service.DELIVER_JOB}:{second.id}:after:{first.id}")
    async with _answering(200) as up:
        assert (
            await service.deliver(db, queue, up, second.id, url=EVENTS_URL, secret=SECRET)
            is DeliveryOutcome.DELIVERED
        )


async def test_a_blocked_event_waits_without_ageing_and_the_cron_skips_it(
    db: Database, settings: Settings, redis: ArqRedis
) -> None:
    """While the first is retried, the second is never attempted nor due: the redrive cron does
    not enqueue it again and again, and its five days have not started."""
    queue = JobQueue(redis, settings.redis.queue_name)
    async with unit_of_work(db, queue) as session:
        first = service.record(
            session, "org_1", "quickbooks.record.synced", {"n": 1}, entity_key=INVOICE
        )
        second = service.record(
            session, "org_1", "quickbooks.record.synced", {"n": 2}, entity_key=INVOICE
        )
    async with _answering(503) as down:
        for _ in range(3):
            await _age_first_attempt(db, first.id, 0)
            assert (
                await service.deliver(db, queue, down, first.id, url=EVENTS_URL, secret=SECRET)
                is DeliveryOutcome.RETRY
            )
            assert (
                await service.deliver(db, queue, down, second.id, url=EVENTS_URL, secret=SECRET)
                is DeliveryOutcome.BLOCKED
            )
    waiting = await _reload(db, second.id)
    assert (waiting.attempts, waiting.first_attempted_at, waiting.last_error) == (0, None, None)
    assert (await _reload(db, first.id)).attempts == 3
    await _age_first_attempt(db, first.id, 0)
    async with db.sessions() as session:
        due = await service.due_event_ids(session)
    assert first.id in due
    assert second.id not in due


async def test_events_without_an_entity_key_are_not_ordered(
    db: Database, settings: Settings, redis: ArqRedis
) -> None:
    queue = JobQueue(redis, settings.redis.queue_name)
    async with unit_of_work(db, queue) as session:
        first = service.record(session, "org_1", "quickbooks.record.synced", {"n": 1})
        second = service.record(session, "org_1", "quickbooks.record.synced", {"n": 2})
    async with _answering(503) as down:
        await service.deliver(db, queue, down, first.id, url=EVENTS_URL, secret=SECRET)
    async with _answering(200) as up:
        outcome = await service.deliver(db, queue, up, second.id, url=EVENTS_URL, secret=SECRET)
    assert outcome is DeliveryOutcome.DELIVERED
    assert (await _reload(db, first.id)).status is DeliveryStatus.PENDING


async def test_lost_jobs_are_redriven_head_first_and_delivered_in_order(
    db: Database, settings: Settings, database_url: str, redis_url: str, redis: ArqRedis
) -> None:
    """R5: Redis forgot every job. The cron re-drives only each entity's first event from
    Postgres; each delivery enqueues the next, so all arrive, in order, with no cron between."""
    org_id = f"org_r5_{uuid.uuid4().hex[:6]}"
    client = service.entity_key("client", "cl_1")
    async with db.sessions() as session:
        events = [
            service.record(session, org_id, "quickbooks.record.synced", {"n": n}, entity_key=key)
            for n in range(3)
            for key in (INVOICE, client)
        ]
        await session.commit()
        take_pending(session)
        due = set(await service.due_event_ids(session))
    assert due & {event.id for event in events} == {events[0].id, events[1].id}

    worker = create_worker(
        settings,
        database_url,
        redis_url,
        database=db,
        max_jobs=1,
        poll_delay=0.02,
        handle_signals=False,
    )
    with respx.mock:
        route = respx.post(EVENTS_URL).mock(return_value=httpx.Response(200))
        await drain_worker(worker, redis)
    arrived = [
        json.loads(call.request.content)["id"]
        for call in route.calls
        if json.loads(call.request.content)["organization_id"] == org_id
    ]
    for key in (INVOICE, client):
        assert [uuid.UUID(id_) for id_ in arrived if id_ in _ids(events, key)] == [
            event.id for event in events if event.entity_key == key
        ]
    for event in events:
        assert (await _reload(db, event.id)).status is DeliveryStatus.DELIVERED


def _ids(events: list[OutboundEvent], key: str) -> set[str]:
    return {str(event.id) for event in events if event.entity_key == key}


async def test_the_same_entity_key_in_another_org_does_not_wait(
    db: Database, settings: Settings, redis: ArqRedis
) -> None:
    queue = JobQueue(redis, settings.redis.queue_name)
    async with unit_of_work(db, queue) as session:
        stuck = service.record(session, "org_1", "quickbooks.record.synced", {}, entity_key=INVOICE)
        other = service.record(session, "org_2", "quickbooks.record.synced", {}, entity_key=INVOICE)
    async with _answering(503) as down:
        await service.deliver(db, queue, down, stuck.id, url=EVENTS_URL, secret=SECRET)
    async with _answering(200) as up:
        outcome = await service.deliver(db, queue, up, other.id, url=EVENTS_URL, secret=SECRET)
    assert outcome is DeliveryOutcome.DELIVERED
