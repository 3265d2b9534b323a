"""The sync log: each record of the org as the push left it, retry and ignore, and the totals.

Every query is scoped to the org of the token: another org's record is simply not found (S1).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.db import Database
from qbsync.errors import ConflictError, NotFoundError, ServiceUnavailableError
from qbsync.mappings.company import NotConnectedError
from qbsync.mappings.references import InvalidCursorError, decode_cursor, encode_cursor
from qbsync.mappings.schemas import Page
from qbsync.models import Connection, ConnectionStatus, RecordKind, RecordStatus, SyncRecord
from qbsync.models.cdc_watermark import CdcWatermark
from qbsync.observability import CallsOnDay, CompanyCallCounter
from qbsync.sync.log_schemas import (
    APPLIED_FIELDS,
    CallsThisMonth,
    CallsToday,
    ClientSummary,
    ExpenseSummary,
    InvoiceSummary,
    KindCounts,
    LastReconciliation,
    PaymentSummary,
    ReconcileRequested,
    ReconciliationApplied,
    ReconciliationCalls,
    RecordDetail,
    RecordError,
    RecordItem,
    RecordWarning,
    SnapshotSummary,
    StatusCounts,
    SyncSummary,
)
from qbsync.sync.pull_schedule import schedule_reconcile

# What a retry turns back into `pending`; `held` too once the org is connected again.
RETRYABLE = frozenset(
    {RecordStatus.FAILED, RecordStatus.NOT_PUSHED, RecordStatus.IGNORED, RecordStatus.HELD}
)


class RecordNotFoundError(NotFoundError):
    code = "record_not_found"


class RecordInProgressError(ConflictError):
    code = "record_in_progress"


class NothingToRetryError(ConflictError):
    code = "nothing_to_retry"


async def list_records(
    db: Database,
    org_id: str,
    *,
    status: RecordStatus | None,
    kind: RecordKind | None,
    limit: int,
    cursor: str | None,
) -> Page[RecordItem]:
    """Newest change first, keyset-paged on (updated_at, id): a page costs the same at any depth,
    and records changing meanwhile move to the front rather than shift every later page."""
    after = _position(cursor) if cursor is not None else None
    statement = (
        select(SyncRecord)
        .where(SyncRecord.org_id == org_id)
        .order_by(SyncRecord.updated_at.desc(), SyncRecord.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        statement = statement.where(SyncRecord.status == status)
    if kind is not None:
        statement = statement.where(SyncRecord.kind == kind)
    if after is not None:
        statement = statement.where(tuple_(SyncRecord.updated_at, SyncRecord.id) < after)
    async with db.sessions() as session:
        rows = list(await session.scalars(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor((_utc(last.updated_at).isoformat(), str(last.id)))
    return Page[RecordItem](items=[item(row) for row in rows], next_cursor=next_cursor)


def _position(cursor: str) -> tuple[datetime, uuid.UUID]:
    at, row_id = decode_cursor(cursor)
    try:
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise _bad_cursor()  # we only give out UTC times; a naive one was made by hand
        # A time whose UTC form falls outside what Postgres holds was made by hand too.
        position = (when.astimezone(UTC), uuid.UUID(row_id))
    except (ValueError, OverflowError) as error:
        raise _bad_cursor() from error
    return position


def _bad_cursor() -> InvalidCursorError:
    return InvalidCursorError(
        "This cursor is not one qbsync gave out; start again without it.", field="cursor"
    )


async def get_record(db: Database, org_id: str, kind: RecordKind, platform_id: str) -> RecordDetail:
    async with db.sessions() as session:
        return detail(await _find(session, org_id, kind, platform_id))


async def retry(
    session: AsyncSession, org_id: str, kind: RecordKind, platform_id: str
) -> SyncRecord:
    """Put the record back in line for the push, now. The caller schedules the push job."""
    record = await _find(session, org_id, kind, platform_id, lock=True)
    if record.status is RecordStatus.IN_PROGRESS:
        raise _in_progress()
    removed = record.removed_in_quickbooks is not None
    if (
        record.status is RecordStatus.SYNCED
        and record.synced_version == record.version
        and not removed
    ):
        raise NothingToRetryError(
            "QuickBooks already holds this version of the record; there is nothing to retry."
        )
    connection = await session.scalar(select(Connection.status).where(Connection.org_id == org_id))
    if connection is ConnectionStatus.NEEDS_REAUTH:
        raise ConflictError(
            "QuickBooks no longer accepts our access: reconnect it to retry this record.",
            code="needs_reauth",
        )
    if connection is not ConnectionStatus.CONNECTED:
        # Nothing can reach QuickBooks; held records are pushed by themselves on reconnect.
        raise NotConnectedError(
            "QuickBooks is not connected: reconnect it and the record is pushed then."
        )
    if removed:
        _forget_removed_document(record)
    if record.status in RETRYABLE:
        if record.status is RecordStatus.NOT_PUSHED:
            # The settings kept it back (auto-push off, before the start date): the user asks
            # for it anyway.
            record.force_push = True
        record.status = RecordStatus.PENDING
        record.next_attempt_at = None
    elif record.status is RecordStatus.SYNCED:
        # Synced at an older version: the newer one is due.
        record.status = RecordStatus.PENDING
        record.next_attempt_at = None
    else:
        # `pending`, perhaps waiting out QuickBooks' wait: the user asks for it now.
        record.next_attempt_at = None
    return record


def _forget_removed_document(record: SyncRecord) -> None:
    """A person asks, on purpose, for an invoice QuickBooks voided or deleted: the push creates
    a new one, since the old one can't take changes any more."""
    record.qbo_id = None
    record.qbo_sync_token = None
    record.qbo_doc_number = None
    record.synced_version = None
    record.removed_in_quickbooks = None
    record.removed_in_quickbooks_at = None
    record.payment_state = None
    record.payment_status = None
    record.status = RecordStatus.PENDING
    record.next_attempt_at = None
    record.force_push = True


async def ignore(
    session: AsyncSession, org_id: str, kind: RecordKind, platform_id: str
) -> SyncRecord:
    """Set the record aside: the push skips it, newer versions included, until it is retried."""
    record = await _find(session, org_id, kind, platform_id, lock=True)
    if record.status is RecordStatus.IN_PROGRESS:
        raise _in_progress()
    record.status = RecordStatus.IGNORED
    record.next_attempt_at = None
    return record


def _in_progress() -> RecordInProgressError:
    return RecordInProgressError(
        "The record is being pushed to QuickBooks right now; try again in a minute."
    )


async def _find(
    session: AsyncSession,
    org_id: str,
    kind: RecordKind,
    platform_id: str,
    *,
    lock: bool = False,
) -> SyncRecord:
    statement = select(SyncRecord).where(
        SyncRecord.org_id == org_id,
        SyncRecord.kind == kind,
        SyncRecord.platform_id == platform_id,
    )
    if lock:
        # A push claiming the record at the same moment waits, or is waited for: the status
        # checked here is the one the change is made to.
        statement = statement.with_for_update()
    record = await session.scalar(statement)
    if record is None:
        raise RecordNotFoundError(f"No {kind.value} record {platform_id!r} in this organisation.")
    return record


async def summary(db: Database, org_id: str, calls: CompanyCallCounter) -> SyncSummary:
    async with db.sessions() as session:
        grouped = await session.execute(
            select(SyncRecord.kind, SyncRecord.status, func.count())
            .where(SyncRecord.org_id == org_id)
            .group_by(SyncRecord.kind, SyncRecord.status)
        )
        counted = {(kind, status): int(count) for kind, status, count in grouped}
        last_push_at = await session.scalar(
            select(func.max(SyncRecord.synced_at)).where(SyncRecord.org_id == org_id)
        )
        company = (
            await session.execute(
                select(Connection.realm_id, Connection.status).where(Connection.org_id == org_id)
            )
        ).first()
        last = (
            await session.get(CdcWatermark, (org_id, company.realm_id))
            if company is not None
            else None
        )
    today = None
    month = None
    # A disconnected org has no current company; one that needs reauth still has its company.
    if company is not None and company.status is not ConnectionStatus.DISCONNECTED:
        # Redis is read with the database session closed (R13).
        try:
            today = await calls.on_day(company.realm_id)
            month = await calls.in_month(company.realm_id)
        except (RedisError, OSError, TimeoutError) as error:
            raise ServiceUnavailableError(
                "qbsync's Redis, which counts QuickBooks calls, is unavailable. Try again in a "
                "minute.",
                code="service_unavailable",
                headers={"Retry-After": "5"},
            ) from error
    return SyncSummary(
        counts=KindCounts(
            **{
                kind.value: StatusCounts(
                    **{status.value: counted.get((kind, status), 0) for status in RecordStatus}
                )
                for kind in RecordKind
            }
        ),
        last_push_at=_utc(last_push_at) if last_push_at is not None else None,
        quickbooks_calls_today=_calls(today or CallsOnDay(datetime.now(UTC).date(), 0, 0)),
        quickbooks_calls_this_month=(
            CallsThisMonth(
                core=month.core,
                coreplus=month.coreplus,
                month=month.month,
                budget=month.budget,
                used_ratio=round(month.used_ratio, 4),
            )
            if month is not None
            else None
        ),
        last_reconciliation=last_reconciliation(last),
    )


def last_reconciliation(row: CdcWatermark | None) -> LastReconciliation | None:
    if row is None or row.last_finished_at is None:
        return None
    return LastReconciliation(
        finished_at=_utc(row.last_finished_at),
        mode=row.last_mode,
        applied=ReconciliationApplied(
            **{name: int((row.last_applied or {}).get(name, 0)) for name in APPLIED_FIELDS}
        ),
        calls=ReconciliationCalls(
            core=int((row.last_calls or {}).get("core", 0)),
            coreplus=int((row.last_calls or {}).get("coreplus", 0)),
        ),
        error=row.last_error,
        changes_read_up_to=_utc(row.changed_since),
    )


async def request_reconciliation(session: AsyncSession, org_id: str) -> ReconcileRequested:
    """Queue the org's reconciliation once this transaction commits (coalesced: asked twice at
    once, it runs once)."""
    company = (
        await session.execute(
            select(Connection.realm_id, Connection.status).where(Connection.org_id == org_id)
        )
    ).first()
    if company is None or company.status is not ConnectionStatus.CONNECTED:
        if company is not None and company.status is ConnectionStatus.NEEDS_REAUTH:
            raise ConflictError(
                "QuickBooks no longer accepts our access: reconnect it to reconcile.",
                code="needs_reauth",
            )
        raise NotConnectedError("QuickBooks is not connected: connect it first.")
    schedule_reconcile(session, org_id)
    last = await session.get(CdcWatermark, (org_id, company.realm_id))
    return ReconcileRequested(status="queued", last_reconciliation=last_reconciliation(last))


def _calls(counted: CallsOnDay) -> CallsToday:
    return CallsToday(core=counted.core, coreplus=counted.coreplus, date=counted.day)


def item(record: SyncRecord) -> RecordItem:
    return RecordItem(**_item_fields(record))


def detail(record: SyncRecord) -> RecordDetail:
    return RecordDetail(
        **_item_fields(record),
        operation=record.operation,
        synced_version=record.synced_version,
        synced_at=_utc(record.synced_at) if record.synced_at is not None else None,
        created_at=_utc(record.created_at),
        next_attempt_at=(
            _utc(record.next_attempt_at) if record.next_attempt_at is not None else None
        ),
        snapshot_summary=snapshot_summary(record.kind, record.snapshot or {}),
    )


def _item_fields(record: SyncRecord) -> dict[str, Any]:
    return {
        "kind": record.kind,
        "platform_id": record.platform_id,
        "status": record.status,
        "version": record.version,
        "qbo_id": record.qbo_id,
        "qbo_doc_number": record.qbo_doc_number,
        "attempts": record.attempts,
        "warnings": _warnings(record.warnings),
        "last_error": _last_error(record.last_error),
        "payment_status": record.payment_status,
        "removed_in_quickbooks": record.removed_in_quickbooks,
        "updated_at": _utc(record.updated_at),
    }


def _last_error(stored: dict[str, Any] | None) -> RecordError | None:
    if not stored:
        return None
    try:
        return RecordError.model_validate(stored)
    except ValidationError:
        # Written in another shape (an older push, a hand fix): the log still shows the
        # record, with what can be read of the error, rather than failing the whole page.
        return RecordError(
            code=_text(stored.get("code")) or "unknown_error",
            message=_text(stored.get("message")) or "The last push failed.",
            intuit_tid=_text(stored.get("intuit_tid")),
        )


def _warnings(stored: list[dict[str, Any]] | None) -> list[RecordWarning]:
    warnings: list[RecordWarning] = []
    for entry in stored or []:
        try:
            warnings.append(RecordWarning.model_validate(entry))
        except ValidationError:
            continue  # not in the documented shape: leaving it out beats a broken page
    return warnings


def snapshot_summary(kind: RecordKind, snapshot: dict[str, Any]) -> SnapshotSummary:
    """A few fields of the platform's snapshot, enough for a person to know which one it is.

    Read leniently: every snapshot was checked on the way in, but a record whose first event was
    a delete holds only its id.
    """
    if kind is RecordKind.CLIENT:
        return ClientSummary(
            name=_text(snapshot.get("name")),
            email=_text(snapshot.get("email")),
            company_name=_text(snapshot.get("company_name")),
        )
    if kind is RecordKind.INVOICE:
        client = snapshot.get("client")
        return InvoiceSummary(
            number=_text(snapshot.get("number")),
            client_name=_text(client.get("name")) if isinstance(client, dict) else None,
            issue_date=_text(snapshot.get("issue_date")),
            currency=_text(snapshot.get("currency")),
            total=_text(snapshot.get("total")),
            status=_text(snapshot.get("status")),
        )
    if kind is RecordKind.EXPENSE:
        supplier = snapshot.get("supplier")
        return ExpenseSummary(
            supplier_name=_text(supplier.get("name")) if isinstance(supplier, dict) else None,
            date=_text(snapshot.get("date")),
            amount=_text(snapshot.get("amount")),
            currency=_text(snapshot.get("currency")),
            category_code=_text(snapshot.get("category_code")),
        )
    return PaymentSummary(
        invoice_id=_text(snapshot.get("invoice_id")),
        amount=_text(snapshot.get("amount")),
        date=_text(snapshot.get("date")),
        currency=_text(snapshot.get("currency")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
