"""Outbound events: recorded in the outbox, delivered with backoff that outlasts a day's outage."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from qbsync.models import DeliveryStatus, OutboundEvent
from qbsync.models.base import utcnow
from qbsync.notify.schemas import OutboundEnvelope, OutboundEventType
from qbsync.queue import enqueue_after_commit

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
GIVE_UP_AFTER = timedelta(days=5)
log = structlog.get_logger(__name__)


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    SKIPPED = "skipped"


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


def retry_delay(attempts: int) -> timedelta:
    return RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]


def _job_id(event_id: uuid.UUID, attempt: int) -> str:
    return f"{DELIVER_JOB}:{event_id}:{attempt}"


async def deliver(
    session: AsyncSession,
    http: httpx.AsyncClient,
    event_id: uuid.UUID,
    *,
    url: str | None,
    secret: str,
) -> DeliveryOutcome:
    """One delivery attempt; the row is locked so two workers never send the same attempt."""
    event = await session.scalar(
        select(OutboundEvent).where(OutboundEvent.id == event_id).with_for_update(skip_locked=True)
    )
    if event is None or event.status is not DeliveryStatus.PENDING:
        return DeliveryOutcome.SKIPPED
    now = utcnow()
    if event.next_attempt_at is not None and event.next_attempt_at > now:
        return DeliveryOutcome.SKIPPED
    if url is None:
        return _schedule_retry(session, event, now, "QBSYNC_PLATFORM__EVENTS_URL is not set")
    body = OutboundEnvelope.model_validate(
        {
            "id": str(event.id),
            "type": event.type,
            "organization_id": event.org_id,
            "occurred_at": event.created_at,
            "data": event.payload,
        }
    ).model_dump_json()
    headers = _signed_headers(str(event.id), now, body, secret)
    try:
        response = await http.post(url, content=body, headers=headers, timeout=15.0)
    except httpx.HTTPError as error:
        return _schedule_retry(session, event, now, f"{type(error).__name__} reaching the platform")
    if response.is_success:
        event.status = DeliveryStatus.DELIVERED
        event.delivered_at = now
        event.attempts += 1
        event.last_error = None
        return DeliveryOutcome.DELIVERED
    return _schedule_retry(
        session, event, now, f"the platform answered HTTP {response.status_code}"
    )


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
    if now - event.created_at >= GIVE_UP_AFTER:
        event.status = DeliveryStatus.DEAD
        event.next_attempt_at = None
        log.error("outbound_event_dead", event_id=str(event.id), attempts=event.attempts)
        return DeliveryOutcome.DEAD
    delay = retry_delay(event.attempts)
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
