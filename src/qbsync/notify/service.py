"""Outbound events: recorded in the outbox, delivered with backoff that outlasts a day's outage."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
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
log = structlog.get_logger(__name__)


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    SKIPPED = "skipped"
    WAITING = "waiting_for_url"


def record(
    session: AsyncSession, org_id: str, event_type: OutboundEventType, data: dict[str, Any]
) -> OutboundEvent:
    event = OutboundEvent(
        id=uuid.uuid4(),
        org_id=org_id,
        type=event_type,
        payload=data,
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
) -> DeliveryOutcome:
    """One delivery attempt, claimed first, so two workers never send the same attempt.

    No database connection is held while the platform answers (R13): the claim commits before
    the POST, and the outcome is written in a second short transaction. A claim pushes the
    event's next attempt past the POST's timeout, so a worker that dies mid-POST leaves an event
    the redrive cron picks up again.
    """
    if url is None:
        # Waiting for an address is not a failed attempt: nothing ages until one is set.
        return DeliveryOutcome.WAITING
    async with unit_of_work(db, queue) as session:
        claimed = await _claim(session, event_id)
    if claimed is None:
        return DeliveryOutcome.SKIPPED
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
        return await _settle(session, event_id, failure)


async def _claim(session: AsyncSession, event_id: uuid.UUID) -> _Claimed | None:
    event = await session.scalar(
        select(OutboundEvent).where(OutboundEvent.id == event_id).with_for_update(skip_locked=True)
    )
    if event is None or event.status is not DeliveryStatus.PENDING:
        return None
    now = utcnow()
    if event.next_attempt_at is not None and event.next_attempt_at > now:
        return None
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


async def _settle(
    session: AsyncSession, event_id: uuid.UUID, failure: str | None
) -> DeliveryOutcome:
    event = await session.scalar(
        select(OutboundEvent).where(OutboundEvent.id == event_id).with_for_update()
    )
    if event is None or event.status is not DeliveryStatus.PENDING:
        return DeliveryOutcome.SKIPPED
    now = utcnow()
    if failure is not None:
        return _schedule_retry(session, event, now, failure)
    event.status = DeliveryStatus.DELIVERED
    event.delivered_at = now
    event.next_attempt_at = None
    event.attempts += 1
    event.last_error = None
    return DeliveryOutcome.DELIVERED


def _signed_headers(message_id: str, now: datetime, body: str, secret: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }


def _schedule_retry(
    session: AsyncSession, event: OutboundEvent, now: datetime, reason: str
) -> DeliveryOutcome:
    event.attempts += 1
    event.last_error = reason
    if now - (event.first_attempted_at or now) >= GIVE_UP_AFTER:
        event.status = DeliveryStatus.DEAD
        event.next_attempt_at = None
        log.error("outbound_event_dead", event_id=str(event.id), attempts=event.attempts)
        return DeliveryOutcome.DEAD
    delay = delay_after(event.attempts, RETRY_DELAYS)
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
    """Pending events whose time has come: re-driven from Postgres whatever Redis remembers (R5)."""
    rows = await session.scalars(
        select(OutboundEvent.id)
        .where(
            OutboundEvent.status == DeliveryStatus.PENDING,
            OutboundEvent.next_attempt_at <= utcnow(),
        )
        .order_by(OutboundEvent.next_attempt_at)
        .limit(limit)
    )
    return list(rows)


def redrive_job_id(event_id: uuid.UUID) -> str:
    return f"{DELIVER_JOB}:{event_id}:redrive"
