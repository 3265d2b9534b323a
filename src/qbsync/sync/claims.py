"""The records' side of a push: claim a slice, note the writes about to go out, store how each
ended (and tell the platform), all in short transactions between the calls to Intuit (R13)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import case, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus, RecordKind, RecordStatus, SyncRecord
from qbsync.models.base import utcnow
from qbsync.notify import service as notify
from qbsync.queue import JobQueue, unit_of_work
from qbsync.sync.payment_status import with_write
from qbsync.sync.plans import Write
from qbsync.sync.push import Outcome, request_id_for
from qbsync.sync.schedule import schedule_push

# Dependencies first: a client's customer before its invoices, invoices before their payments.
KIND_ORDER = case(
    {
        RecordKind.CLIENT.value: 0,
        RecordKind.INVOICE.value: 1,
        RecordKind.EXPENSE.value: 2,
        RecordKind.PAYMENT.value: 3,
    },
    value=SyncRecord.kind,
)
# A payment that waited on this code is woken when its invoice is synced.
WAKES_ON_INVOICE = ("waiting_for_invoice", "invoice_not_in_quickbooks")


def due(org_id: str | None = None) -> Any:
    """Pending and due, or claimed by a pusher whose lease ran out (it died mid-push)."""
    now = utcnow()
    condition = or_(
        (SyncRecord.status == RecordStatus.PENDING)
        & or_(SyncRecord.next_attempt_at.is_(None), SyncRecord.next_attempt_at <= now),
        (SyncRecord.status == RecordStatus.IN_PROGRESS) & (SyncRecord.next_attempt_at <= now),
    )
    return condition if org_id is None else condition & (SyncRecord.org_id == org_id)


async def claim(db: Database, org_id: str, limit: int, lease: timedelta) -> list[SyncRecord]:
    """Up to `limit` due records, now `in_progress` and this job's until the lease ends."""
    async with db.sessions() as session:
        rows = list(
            await session.scalars(
                select(SyncRecord)
                .where(due(org_id))
                .order_by(KIND_ORDER, SyncRecord.snapshot_occurred_at, SyncRecord.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        now = utcnow()
        for row in rows:
            row.status = RecordStatus.IN_PROGRESS
            row.next_attempt_at = now + lease
            row.attempts += 1
        await session.commit()
    return rows


async def hold(db: Database, queue: JobQueue, org_id: str, ids: Sequence[uuid.UUID] = ()) -> None:
    """Not connected (or QuickBooks wants a reconnect): the org's work waits, `held`."""
    async with unit_of_work(db, queue) as session:
        condition = due(org_id) | (SyncRecord.status == RecordStatus.PENDING)
        if ids:
            condition = condition | SyncRecord.id.in_(list(ids))
        await session.execute(
            update(SyncRecord)
            .where(SyncRecord.org_id == org_id, condition)
            .values(status=RecordStatus.HELD, next_attempt_at=None)
        )


async def writes_started(db: Database, writes: Sequence[tuple[SyncRecord, Write]]) -> None:
    """Before the documents go out: each record remembers its write, so a crash before the
    outcome is stored leaves a record that looks its document up first (R4)."""
    if not writes:
        return
    now = utcnow()
    rows = []
    for record, write in writes:
        record.write_requestid = request_id_for(record, write.operation)
        record.write_started_at = record.write_started_at or now
        rows.append(
            {
                "id": record.id,
                "write_started_at": record.write_started_at,
                "write_requestid": record.write_requestid,
            }
        )
    async with db.sessions() as session:
        # One statement for the slice (an UPDATE by primary key per row, sent together).
        await session.execute(update(SyncRecord), rows)
        await session.commit()


def _in_lock_order(query: Any) -> Any:
    """The intake's order (kind, then platform id by code point): a settle and a delivery
    touching the same records wait for each other, never deadlock."""
    return query.order_by(SyncRecord.kind, SyncRecord.platform_id.collate("C")).with_for_update()


async def settle(
    db: Database, queue: JobQueue, org_id: str, realm_id: str, outcomes: Sequence[Outcome]
) -> None:
    """Store every outcome in one transaction and tell the platform; then wake what waited on
    the slice's invoices and ask for the next slice."""
    settled_invoices: list[str] = []
    async with unit_of_work(db, queue) as session:
        current = await session.scalar(
            select(Connection).where(Connection.org_id == org_id).with_for_update(read=True)
        )
        connected = current is not None and current.status is ConnectionStatus.CONNECTED
        same_company = connected and current is not None and current.realm_id == realm_id
        ids = [outcome.record_id for outcome in outcomes]
        rows = await session.scalars(
            _in_lock_order(select(SyncRecord).where(SyncRecord.id.in_(ids)))
        )
        records = {row.id: row for row in rows}
        for outcome in outcomes:
            record = records.get(outcome.record_id)
            if record is not None:
                _apply(session, record, outcome, realm_id, same_company, connected)
                if record.kind is RecordKind.INVOICE and outcome.ending not in ("deferred", "held"):
                    settled_invoices.append(record.platform_id)
    async with unit_of_work(db, queue) as session:
        # After the outcomes, so a payment of the same slice (stored as waiting a moment ago)
        # is woken too: pushed now, or failing with the invoice's reason.
        await _wake_payments(session, org_id, settled_invoices)
        more = await session.scalar(select(SyncRecord.id).where(due(org_id)).limit(1))
        if more is not None and same_company:
            schedule_push(session, org_id)


def _apply(
    session: AsyncSession,
    record: SyncRecord,
    outcome: Outcome,
    realm_id: str,
    same_company: bool,
    connected: bool,
) -> None:
    now = utcnow()
    if outcome.deleted:
        record.qbo_id = record.qbo_sync_token = record.qbo_doc_number = None
    elif outcome.qbo_id is not None:
        # What exists in QuickBooks is stored whatever happened meanwhile, with the company it
        # is in: a newer version updates it instead of creating another, and a switch to
        # another company never sends this id there (R12).
        record.realm_id = realm_id
        record.qbo_id = outcome.qbo_id
        record.qbo_entity = outcome.qbo_entity or record.qbo_entity
        record.qbo_sync_token = outcome.sync_token
        record.qbo_doc_number = outcome.doc_number
        if record.kind is RecordKind.INVOICE and outcome.written_at is not None:
            record.payment_state = with_write(record.payment_state, outcome.written_at)
    if not (outcome.uncertain and outcome.ending in ("deferred", "held")):
        record.write_started_at = None
        record.write_requestid = None
    superseded = record.version != outcome.version
    if record.status is not RecordStatus.IN_PROGRESS or superseded or not same_company:
        # Held or ignored meanwhile, a newer version arrived, or the org disconnected or moved
        # to another company: this outcome is no longer the record's state.
        if record.status is RecordStatus.IN_PROGRESS:
            record.status = RecordStatus.PENDING if connected else RecordStatus.HELD
            record.next_attempt_at = None
        return
    if outcome.ending == "held":
        # QuickBooks wants a reconnect: the work waits, and resumes on reconnect.
        record.status = RecordStatus.HELD
        record.next_attempt_at = None
        return
    if outcome.ending == "synced":
        record.status = RecordStatus.SYNCED
        record.synced_version = record.version
        record.synced_at = now
        record.last_error = None
        record.warnings = outcome.warnings
        record.force_push = False
        record.next_attempt_at = None
        notify.record(
            session,
            record.org_id,
            "quickbooks.record.synced",
            {
                "kind": record.kind.value,
                "platform_id": record.platform_id,
                "qbo_id": outcome.qbo_id,
                "qbo_doc_number": record.qbo_doc_number,
                "version": record.version,
                "warnings": outcome.warnings,
            },
            entity_key=notify.entity_key(record.kind.value, record.platform_id),
        )
    elif outcome.ending == "failed":
        record.status = RecordStatus.FAILED
        record.last_error = outcome.error
        record.next_attempt_at = None
        error = outcome.error or {}
        notify.record(
            session,
            record.org_id,
            "quickbooks.record.failed",
            {
                "kind": record.kind.value,
                "platform_id": record.platform_id,
                "code": outcome.code,
                "message": outcome.message,
                "fault": error.get("fault"),
            },
            entity_key=notify.entity_key(record.kind.value, record.platform_id),
        )
    elif outcome.ending == "not_pushed":
        record.status = RecordStatus.NOT_PUSHED
        record.last_error = {
            "code": outcome.code,
            "message": outcome.message,
            "fault": None,
            "intuit_tid": None,
        }
        record.next_attempt_at = None
    else:
        record.status = RecordStatus.PENDING
        record.next_attempt_at = now + timedelta(seconds=outcome.wait_seconds or 60.0)
        record.last_error = outcome.error or {
            "code": outcome.code,
            "message": outcome.message,
            "fault": None,
            "intuit_tid": None,
        }


async def _wake_payments(session: AsyncSession, org_id: str, invoice_ids: list[str]) -> None:
    if not invoice_ids:
        return
    waiting = await session.scalars(
        _in_lock_order(
            select(SyncRecord.id).where(
                SyncRecord.org_id == org_id,
                SyncRecord.kind == RecordKind.PAYMENT,
                SyncRecord.snapshot["invoice_id"].as_string().in_(invoice_ids),
                SyncRecord.status.in_([RecordStatus.PENDING, RecordStatus.FAILED]),
                SyncRecord.last_error["code"].as_string().in_(WAKES_ON_INVOICE),
            )
        )
    )
    ids = list(waiting)
    if ids:
        await session.execute(
            update(SyncRecord)
            .where(SyncRecord.id.in_(ids))
            .values(status=RecordStatus.PENDING, next_attempt_at=None)
        )


async def due_orgs(session: AsyncSession, limit: int = 1000) -> list[str]:
    rows = await session.scalars(select(SyncRecord.org_id).where(due()).distinct().limit(limit))
    return list(rows)


async def has_due(session: AsyncSession, org_id: str) -> bool:
    return bool(await session.scalar(select(exists().where(due(org_id)))))
