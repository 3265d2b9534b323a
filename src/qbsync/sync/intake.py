"""Platform events in: verified, checked, stored once, and folded into each entity's record.

One transaction stores every new event of a delivery and upserts the records they touch, so an
answer of 202 means all of it is in Postgres (R1) and a redelivery changes nothing (R2). Events
of one entity are applied in the platform's order (`occurred_at`): a snapshot older than the
record's is kept in the event log but never replaces the newer one. An org that is not connected
still has its events stored; its records wait as `held`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from qbsync.errors import AppError, UnauthorizedError
from qbsync.models import (
    CatalogueEntry,
    CatalogueKind,
    Connection,
    ConnectionStatus,
    PlatformEvent,
    RecordKind,
    RecordStatus,
    SyncRecord,
)
from qbsync.models.base import utcnow
from qbsync.sync.events import EVENT_TYPES, MAX_BATCH, AcceptedEvents, Envelope, Event
from qbsync.sync.schedule import schedule_push

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
MAX_WEBHOOK_ID = 200
# Events from before the platform existed, or from the future, are typos that would otherwise
# freeze a record (a newer snapshot would never be newer than them).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
# A record the user set aside stays aside when a newer version arrives; one being pushed stays
# the pusher's, which sees the newer version when it records its outcome and pushes again.
KEEPS_STATUS = frozenset({RecordStatus.IGNORED, RecordStatus.IN_PROGRESS})


class InvalidEventsError(AppError):
    status = 422
    code = "validation_error"


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """The delivery's `webhook-id`, once its signature and timestamp (within 5 minutes) hold."""
    given = {name: headers.get(name, "") for name in SIGNATURE_HEADERS}
    try:
        if len(given["webhook-id"]) > MAX_WEBHOOK_ID:
            raise WebhookVerificationError("webhook-id too long")
        Webhook(secret).verify(body, given, json_parse=False)
    # The library lets a malformed signature header or a body that is not UTF-8 through as a
    # ValueError of its own: unsigned either way.
    except (WebhookVerificationError, ValueError) as error:
        raise UnauthorizedError(
            "The event's Standard Webhooks signature is missing, wrong or too old (more than "
            "5 minutes off); nothing was stored.",
            code="invalid_signature",
        ) from error
    return given["webhook-id"]


def parse(body: bytes, webhook_id: str) -> list[Event]:
    """Every event of the delivery, or one 422 naming every field at fault in every event."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise InvalidEventsError(
            "The body is not JSON.", extra={"errors": [_error("body", "json_invalid", "not JSON")]}
        ) from error
    batch = isinstance(document, list)
    items = document if batch else [document]
    if batch and not 1 <= len(items) <= MAX_BATCH:
        raise InvalidEventsError(
            f"A batch holds 1 to {MAX_BATCH} events.",
            extra={"errors": [_error("body", "too_long", f"1 to {MAX_BATCH} events")]},
        )
    events: list[Event] = []
    errors: list[dict[str, str]] = []
    now = utcnow()
    for position, item in enumerate(items):
        prefix = f"{position}." if batch else ""
        event = _event(item, prefix, None if batch else webhook_id, errors, now)
        if event is not None:
            events.append(event)
    if errors:
        fields = ", ".join(sorted({entry["field"] for entry in errors})[:10])
        raise InvalidEventsError(
            f"The events are not valid: check {fields}.", extra={"errors": errors}
        )
    return events


def _event(
    item: Any, prefix: str, webhook_id: str | None, errors: list[dict[str, str]], now: datetime
) -> Event | None:
    where = prefix.rstrip(".") or "body"
    if not isinstance(item, dict):
        errors.append(_error(where, "model_type", "an event is a JSON object"))
        return None
    if not _storable(item):
        errors.append(_error(where, "unstorable", "holds NaN, Infinity, a NUL or a lone surrogate"))
        return None
    try:
        envelope = Envelope.model_validate(item)
    except ValidationError as invalid:
        errors.extend(_errors(invalid, prefix))
        return None
    if not EARLIEST <= envelope.occurred_at <= now + FUTURE_SLACK:
        errors.append(
            _error(f"{prefix}occurred_at", "out_of_range", "must be a real time, not in the future")
        )
        return None
    if envelope.id is None and webhook_id is None:
        errors.append(_error(f"{prefix}id", "missing", "each event of a batch needs its own id"))
        return None
    kind = EVENT_TYPES[envelope.type]
    try:
        data = kind.data.model_validate(envelope.data)
    except ValidationError as invalid:
        errors.extend(_errors(invalid, f"{prefix}data."))
        return None
    if envelope.type == "invoice.voided" and getattr(data, "status", None) != "void":
        errors.append(
            _error(f"{prefix}data.status", "literal_error", 'a voided invoice says "void"')
        )
        return None
    # The platform numbers events per organisation, as far as qbsync knows: one org's id never
    # stands for another org's event. A single event without one is keyed by its delivery.
    # The two sources are kept apart, so a delivery's id never matches an event's.
    key = f"evt:{envelope.organization_id}:{envelope.id}" if envelope.id else f"msg:{webhook_id}"
    return Event(
        key=key,
        type=envelope.type,
        org_id=envelope.organization_id,
        occurred_at=envelope.occurred_at,
        kind=kind.kind,
        operation=kind.operation,
        platform_id=str(getattr(data, "id")),  # noqa: B009 - every shape has an id
        data=data,
        raw=item,
    )


def _storable(item: dict[str, Any]) -> bool:
    """What Postgres' jsonb can hold: no NaN or Infinity, no NUL, no lone surrogate."""
    try:
        text = json.dumps(item, allow_nan=False, ensure_ascii=False)
        text.encode()
    except (ValueError, UnicodeEncodeError):
        return False
    return "\\u0000" not in text and "\x00" not in text


# At one instant, a delete outranks a void, which outranks an upsert: the outcome never depends
# on the order of listing or arrival.
_RANK = {"upsert": 0, "void": 1, "delete": 2}


def _apply_order(event: Event) -> tuple[str, str, str, datetime, int, str]:
    return (
        event.org_id,
        event.kind,
        event.platform_id,
        event.occurred_at,
        _RANK[event.operation],
        event.key,
    )


def _newer(event: Event, held_at: datetime | None, held_operation: str) -> bool:
    if held_at is None or event.occurred_at > held_at:
        return True
    return event.occurred_at == held_at and _RANK[event.operation] > _RANK.get(held_operation, 0)


def _errors(invalid: ValidationError, prefix: str) -> list[dict[str, str]]:
    return [
        _error(
            prefix + ".".join(str(part) for part in entry["loc"]),
            str(entry["type"]),
            str(entry["msg"]),
        )
        for entry in invalid.errors()
    ]


def _error(field: str, code: str, message: str) -> dict[str, str]:
    return {
        "field": field.rstrip(".") or "body",
        "location": "body",
        "code": code,
        "message": message,
    }


async def store(session: AsyncSession, events: Sequence[Event]) -> AcceptedEvents:
    """Store the new events and apply each to its entity, in the entity's own order."""
    accepted = duplicates = 0
    seen: set[str] = set()
    fresh: list[Event] = []
    # Inserted in key order: two deliveries of the same events wait for each other, never
    # deadlock.
    for event in sorted(events, key=lambda e: e.key):
        if event.key in seen:
            duplicates += 1
            continue
        seen.add(event.key)
        stored = await session.scalar(
            insert(PlatformEvent)
            .values(
                webhook_id=event.key,
                org_id=event.org_id,
                type=event.type,
                kind=event.kind,
                platform_id=event.platform_id,
                occurred_at=event.occurred_at,
                received_at=utcnow(),
                payload=event.raw,
            )
            .on_conflict_do_nothing(index_elements=[PlatformEvent.webhook_id])
            .returning(PlatformEvent.id)
        )
        if stored is None:
            duplicates += 1
        else:
            accepted += 1
            fresh.append(event)
    connected = await _connected_orgs(session, {event.org_id for event in fresh})
    for org_id in sorted(connected):
        schedule_push(session, org_id)
    # One order for every delivery (entity, then time): two deliveries touching the same records
    # lock them in the same order, and each entity's events apply oldest first.
    for event in sorted(fresh, key=_apply_order):
        if event.kind in ("service", "tax_rate"):
            await _catalogue(session, event)
        else:
            await _record(session, event, event.org_id in connected)
    return AcceptedEvents(accepted=accepted, duplicates=duplicates)


async def _connected_orgs(session: AsyncSession, org_ids: set[str]) -> set[str]:
    if not org_ids:
        return set()
    rows = await session.scalars(
        select(Connection.org_id).where(
            Connection.org_id.in_(sorted(org_ids)),
            Connection.status == ConnectionStatus.CONNECTED,
        )
    )
    return set(rows)


def _snapshot(event: Event, previous: dict[str, Any] | None) -> dict[str, Any]:
    """A delete carries only the id: the last full snapshot is kept beside it."""
    if event.operation == "delete" and previous:
        return previous
    return event.data.model_dump(mode="json")


async def _record(session: AsyncSession, event: Event, connected: bool) -> None:
    status = RecordStatus.PENDING if connected else RecordStatus.HELD
    kind = RecordKind(event.kind)
    created = await session.scalar(
        insert(SyncRecord)
        .values(
            org_id=event.org_id,
            kind=kind,
            platform_id=event.platform_id,
            operation=event.operation,
            snapshot=_snapshot(event, None),
            snapshot_occurred_at=event.occurred_at,
            version=1,
            status=status,
            attempts=0,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["org_id", "kind", "platform_id"])
        .returning(SyncRecord.id)
    )
    if created is not None:
        return
    record = await session.scalar(
        select(SyncRecord)
        .where(
            SyncRecord.org_id == event.org_id,
            SyncRecord.kind == kind,
            SyncRecord.platform_id == event.platform_id,
        )
        .with_for_update()
    )
    assert record is not None
    if not _newer(event, record.snapshot_occurred_at, record.operation):
        return  # kept in the log; the record already holds a newer snapshot
    record.snapshot = _snapshot(event, record.snapshot)
    record.snapshot_occurred_at = event.occurred_at
    record.operation = event.operation
    record.version += 1
    if record.status not in KEEPS_STATUS:
        record.status = status
        record.next_attempt_at = None


async def _catalogue(session: AsyncSession, event: Event) -> None:
    kind = CatalogueKind(event.kind)
    created = await session.scalar(
        insert(CatalogueEntry)
        .values(
            org_id=event.org_id,
            kind=kind,
            platform_id=event.platform_id,
            snapshot=_snapshot(event, None),
            occurred_at=event.occurred_at,
            deleted=event.operation == "delete",
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["org_id", "kind", "platform_id"])
        .returning(CatalogueEntry.id)
    )
    if created is not None:
        return
    row = await session.scalar(
        select(CatalogueEntry)
        .where(
            CatalogueEntry.org_id == event.org_id,
            CatalogueEntry.kind == kind,
            CatalogueEntry.platform_id == event.platform_id,
        )
        .with_for_update()
    )
    assert row is not None
    if not _newer(event, row.occurred_at, "delete" if row.deleted else "upsert"):
        return
    row.snapshot = _snapshot(event, row.snapshot)
    row.occurred_at = event.occurred_at
    row.deleted = event.operation == "delete"
