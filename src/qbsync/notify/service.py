"""Outbound events: recorded in the outbox, delivered with backoff that outlasts a day's outage.

Events about one entity (an `entity_key` such as `invoice:inv_1`) reach the platform in the order
they were recorded (`seq`): only the *head* of a key, its lowest pending `seq`, is attempted. The
others wait, neither attempted nor ageing, and the head's job enqueues the next one as soon as it
is delivered or dead. Events without a key are unordered.

One key's claims and settles take turns under a transaction-level advisory lock, so a claim never
sees its predecessor pending after that predecessor's settle looked for the next event to wake:
the wake-up cannot be lost between the two. Neither takes a row lock while holding the key's
lock, so the two never deadlock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
import structlog
from sqlalchemy import ColumnElement, and_, exists, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from standardwebhooks.webhooks import Webhook

from qbsync.backoff import delay_after
from qbsync.db import Database
from qbsync.models import DeliveryStatus, OutboundEvent
from qbsync.models.base import utcnow
from qbsync.notify.schemas import OutboundEnvelope, OutboundEventType
from qbsync.queue import JobQueue, enqueue_after_commit, unit_of_work

DELIVER_JOB = "deliver_outbound_event"
# Attempt n waits RETRY_DELAYS[n-1]; after the list, every last value, until GIVE_UP_AFTER (R11).
RETRY_DELAYS = [
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
]
# Counted from the first real attempt, not from when the event was recorded.
GIVE_UP_AFTER = timedelta(days=5)
POST_TIMEOUT_SECONDS = 15.0
# A claimed attempt is the claimer's for this long: past the POST's timeout, with a margin.
CLAIM_FOR = timedelta(seconds=60)
# The key of every `quickbooks.connection.updated` of an org: one connection per org.
CONNECTION_KEY = "connection"
_LOCK_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
log = structlog.get_logger(__name__)


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    SKIPPED = "skipped"
    WAITING = "waiting_for_url"
    # An earlier event of the same entity is still pending; its delivery or death wakes this one.
    BLOCKED = "waiting_for_earlier_event"


def entity_key(kind: str, platform_id: str) -> str:
    """The ordering key of events about one platform entity: `invoice:inv_1`."""
    return f"{kind}:{platform_id}"


def record(
    session: AsyncSession,
    org_id: str,
    event_type: OutboundEventType,
    data: dict[str, Any],
    *,
    entity_key: str | None = None,
) -> OutboundEvent:
    """Store an event in the writer's transaction; it is delivered after the commit, after every
    event recorded before it under the same `entity_key`."""
    event = OutboundEvent(
        id=uuid.uuid4(),
        org_id=org_id,
        type=event_type,
        payload=data,
        entity_key=entity_key,
        status=DeliveryStatus.PENDING,
        next_attempt_at=utcnow(),
    )
    session.add(event)
    enqueue_after_commit(session, DELIVER_JOB, event.id, job_id=_job_id(event.id, 0))
    return event


def _job_id(event_id: uuid.UUID, attempt: int) -> str:
    return f"{DELIVER_JOB}:{event_id}:{attempt}"


@dataclass(frozen=True)
class _Claimed:
    event_id: uuid.UUID
    body: str


async def deliver(
    db: Database,
    queue: JobQueue,
    http: httpx.AsyncClient,
    event_id: uuid.UUID,
    *,
    url: str | None,
    secret: str,
    time_scale: float = 1.0,
) -> DeliveryOutcome:
    """One delivery attempt, claimed first, so two workers never send the same attempt.

    No database connection is held while the platform answers (R13): the claim commits before
    the POST, and the outcome is written in a second short transaction. A claim pushes the
    event's next attempt past the POST's timeout, so a worker that dies mid-POST leaves an event
    the redrive cron picks up again. `time_scale` divides the retry delays and the give-up age.
    """
    if url is None:
        # Waiting for an address is not a failed attempt: nothing ages until one is set.
        return DeliveryOutcome.WAITING
    async with unit_of_work(db, queue) as session:
        claimed = await _claim(session, event_id)
    if isinstance(claimed, DeliveryOutcome):
        return claimed
    headers = _signed_headers(str(claimed.event_id), utcnow(), claimed.body, secret)
    failure: str | None = None
    try:
        response = await http.post(
            url, content=claimed.body, headers=headers, timeout=POST_TIMEOUT_SECONDS
        )
    except httpx.HTTPError as error:
        failure = f"{type(error).__name__} reaching the platform"
    else:
        if not response.is_success:
            failure = f"the platform answered HTTP {response.status_code}"
    async with unit_of_work(db, queue) as session:
        return await _settle(session, event_id, failure, time_scale)


async def _claim(session: AsyncSession, event_id: uuid.UUID) -> _Claimed | DeliveryOutcome:
    event = await session.scalar(
        select(OutboundEvent).where(OutboundEvent.id == event_id).with_for_update(skip_locked=True)
    )
    if event is None or event.status is not DeliveryStatus.PENDING:
        return DeliveryOutcome.SKIPPED
    now = utcnow()
    if event.next_attempt_at is not None and event.next_attempt_at > now:
        return DeliveryOutcome.SKIPPED
    if event.entity_key is not None:
        await _lock_key(session, event)
        if await _has_pending_predecessor(session, event):
            # Nothing is written: no attempt is counted, and the give-up clock does not start.
            return DeliveryOutcome.BLOCKED
    event.next_attempt_at = now + CLAIM_FOR
    event.first_attempted_at = event.first_attempted_at or now
    body = OutboundEnvelope.model_validate(
        {
            "id": str(event.id),
            "type": event.type,
            "organization_id": event.org_id,
            "occurred_at": event.created_at,
            "data": event.payload,
        }
    ).model_dump_json()
    return _Claimed(event.id, body)


async def _lock_key(session: AsyncSession, event: OutboundEvent) -> None:
    await session.execute(_LOCK_KEY, {"key": f"qbsync:outbound:{event.org_id}:{event.entity_key}"})


def _pending_of_key(event: OutboundEvent) -> ColumnElement[bool]:
    return and_(
        OutboundEvent.org_id == event.org_id,
        OutboundEvent.entity_key == event.entity_key,
        OutboundEvent.status == DeliveryStatus.PENDING,
        OutboundEvent.id != event.id,
    )


async def _has_pending_predecessor(session: AsyncSession, event: OutboundEvent) -> bool:
    earlier = exists().where(_pending_of_key(event), OutboundEvent.seq < event.seq)
    return bool(await session.scalar(select(earlier)))


async def _settle(
    session: AsyncSession, event_id: uuid.UUID, failure: str | None, time_scale: float
) -> DeliveryOutcome:
    event = await session.scalar(
        select(OutboundEvent).where(OutboundEvent.id == event_id).with_for_update()
    )
    if event is None or event.status is not DeliveryStatus.PENDING:
        return DeliveryOutcome.SKIPPED
    now = utcnow()
    if failure is not None:
        outcome = _schedule_retry(session, event, now, failure, time_scale)
    else:
        event.status = DeliveryStatus.DELIVERED
        event.delivered_at = now
        event.next_attempt_at = None
        event.attempts += 1
        event.last_error = None
        outcome = DeliveryOutcome.DELIVERED
    if outcome is not DeliveryOutcome.RETRY and event.entity_key is not None:
        await _wake_next(session, event)
    return outcome


async def _wake_next(session: AsyncSession, event: OutboundEvent) -> None:
    """The event left pending: the key's next event goes now rather than at the next cron."""
    await _lock_key(session, event)
    following = await session.scalar(
        select(OutboundEvent.id).where(_pending_of_key(event)).order_by(OutboundEvent.seq).limit(1)
    )
    if following is not None:
        # A job id of its own: the follower's earlier job may still be finishing as BLOCKED.
        enqueue_after_commit(
            session, DELIVER_JOB, following, job_id=f"{DELIVER_JOB}:{following}:after:{event.id}"
        )


def _signed_headers(message_id: str, now: datetime, body: str, secret: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }


def _schedule_retry(
    session: AsyncSession, event: OutboundEvent, now: datetime, reason: str, time_scale: float
) -> DeliveryOutcome:
    event.attempts += 1
    event.last_error = reason
    if now - (event.first_attempted_at or now) >= GIVE_UP_AFTER / time_scale:
        event.status = DeliveryStatus.DEAD
        event.next_attempt_at = None
        log.error("outbound_event_dead", event_id=str(event.id), attempts=event.attempts)
        return DeliveryOutcome.DEAD
    delay = delay_after(event.attempts, RETRY_DELAYS) / time_scale
    event.next_attempt_at = now + delay
    enqueue_after_commit(
        session,
        DELIVER_JOB,
        event.id,
        job_id=_job_id(event.id, event.attempts),
        defer_seconds=delay.total_seconds(),
    )
    log.info("outbound_event_retry", event_id=str(event.id), attempts=event.attempts, reason=reason)
    return DeliveryOutcome.RETRY


async def due_event_ids(session: AsyncSession, limit: int = 500) -> list[uuid.UUID]:
    """Pending events whose time has come: re-driven from Postgres whatever Redis remembers (R5).

    Only the head of each key is due: an event behind a pending one would only be found blocked,
    at every cron run; it is enqueued when the one before it leaves pending.
    """
    earlier = aliased(OutboundEvent)
    rows = await session.scalars(
        select(OutboundEvent.id)
        .where(
            OutboundEvent.status == DeliveryStatus.PENDING,
            OutboundEvent.next_attempt_at <= utcnow(),
            or_(
                OutboundEvent.entity_key.is_(None),
                ~exists().where(
                    earlier.org_id == OutboundEvent.org_id,
                    earlier.entity_key == OutboundEvent.entity_key,
                    earlier.status == DeliveryStatus.PENDING,
                    earlier.seq < OutboundEvent.seq,
                ),
            ),
        )
        .order_by(OutboundEvent.next_attempt_at)
        .limit(limit)
    )
    return list(rows)


def redrive_job_id(event_id: uuid.UUID, run_at: datetime) -> str:
    """One re-drive job per event per cron run (`run_at`, to the second). A fixed id would stay
    taken while a worker killed mid-delivery keeps it in Redis, until arq's own job timeout
    (minutes), and every run would be refused meanwhile. A run that finds the job of an earlier
    run still waiting adds another; the claim lets only one of them deliver."""
    return f"{DELIVER_JOB}:{event_id}:redrive:{int(run_at.timestamp())}"
