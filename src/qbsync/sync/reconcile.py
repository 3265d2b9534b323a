"""Reconciliation of one company: Change Data Capture since the watermark, applied through the
same code path as webhooks, so a day of lost webhooks still brings every status (R10).

Its cost follows what changed, not what exists (P5): one CDC call for every entity qbsync
follows, plus the reads CDC did not answer (payments of a changed invoice). Only a watermark
older than CDC reaches (30 days) re-reads the invoices qbsync knows, in batches of
queries. The run also re-drives work whose jobs Redis lost (R5).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from qbsync.db import Database
from qbsync.mappings.company import Company
from qbsync.models import Connection, ConnectionStatus, RecordKind, SyncRecord, SyncSettings
from qbsync.models.base import utcnow
from qbsync.models.cdc_watermark import CdcWatermark
from qbsync.qbo import BatchQuery, CdcResult, QboEntity
from qbsync.qbo.entities import Account, Customer, Invoice, Item, Payment, Vendor
from qbsync.qbo.query import in_list
from qbsync.qbo.query import select as select_statement
from qbsync.settings import ReconcileSettings
from qbsync.sync import removals
from qbsync.sync.changes import Applied, Change
from qbsync.sync.pull import PullContext, apply_changes

log = structlog.get_logger(__name__)
# Every entity qbsync follows, in one CDC call.
CDC_TYPES: tuple[type[QboEntity], ...] = (Invoice, Payment, Customer, Item, Account, Vendor)
# Invoices are re-read 100 ids per query and 30 queries per batch call.
IDS_PER_QUERY = 100
QUERIES_PER_BATCH = 30
# Stay this far inside Intuit's 30 days: a watermark right at the edge is refused by the time
# the call arrives.
WINDOW_MARGIN = timedelta(hours=1)
# Invoices QuickBooks voided or deleted can't change again: nothing to read.
GONE_STATUSES = ("voided", "deleted")
CACHED_LISTS = frozenset({"Account", "Item", "Customer", "Vendor"})


@dataclass(frozen=True)
class Claimed:
    changed_since: datetime
    lease_id: str


@dataclass(frozen=True)
class Finished:
    mode: str
    watermark: datetime
    applied: Applied
    # Reference lists CDC showed changed: their cached copies are stale.
    changed_lists: frozenset[str] = frozenset()


async def claim_run(db: Database, company: Company, settings: ReconcileSettings) -> Claimed | None:
    """The company's watermark, leased to this run; None while another run holds it."""
    now = utcnow()
    async with db.sessions() as session:
        connected_at = await session.scalar(
            select(Connection.connected_at).where(Connection.id == company.connection_id)
        )
        # The first run of a company inserts the row; two first runs at once both reach the
        # row lock below instead of one failing on the primary key.
        await session.execute(
            insert(CdcWatermark)
            .values(
                org_id=company.org_id,
                realm_id=company.realm_id,
                # QuickBooks only notifies changes after the connection, and qbsync only
                # follows what it pushed since: nothing older is news.
                changed_since=connected_at or now,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
        )
        row = await session.get(
            CdcWatermark,
            (company.org_id, company.realm_id),
            with_for_update=True,
            populate_existing=True,
        )
        if row is None or (row.lease_until is not None and row.lease_until > now):
            await session.rollback()
            return None
        lease_id = uuid.uuid4().hex
        row.lease_id = lease_id
        row.lease_until = now + timedelta(seconds=settings.lease_seconds)
        row.last_run_at = now
        since = row.changed_since
        await session.commit()
    return Claimed(changed_since=since, lease_id=lease_id)


async def run(pull: PullContext, claimed: Claimed, settings: ReconcileSettings) -> Finished:
    """Read what changed since the watermark and apply it; the caller stores the outcome."""
    started = utcnow()
    oldest = started - timedelta(days=settings.cdc_window_days) + WINDOW_MARGIN
    read_from = claimed.changed_since - timedelta(seconds=settings.overlap_seconds)
    if read_from < oldest:
        applied = await full_reread(pull)
        # Whatever changed while the re-read ran is the next run's first CDC.
        return Finished("full", started, applied)
    applied = Applied()
    changed: set[str] = set()
    rounds = 0

    async def read(entity_types: tuple[type[QboEntity], ...], since: datetime) -> CdcResult:
        nonlocal rounds
        rounds += 1
        result = await pull.client.cdc(entity_types, since)
        changes, known = _from_cdc(result.changes)
        changed.update(name for name, rows in result.changes.items() if rows)
        applied.add(await apply_changes(pull, changes, known))
        return result

    result = await read(CDC_TYPES, read_from)
    if not result.truncated:
        watermark = result.server_time or started
        return Finished("cdc", watermark, applied, frozenset(changed & CACHED_LISTS))

    # Capped at 1,000 objects. How QuickBooks cuts across entities is not documented [U], so
    # each entity is read on its own, going on from its own newest object (the same second may
    # be read twice; applying a change twice changes nothing). The next run starts from the
    # earliest answer that was complete.
    async def page(entity_type: type[QboEntity]) -> datetime | None:
        """When this entity's changes were all read (its complete answer's time), else None."""
        since = read_from
        while rounds < settings.max_cdc_rounds:
            result = await read((entity_type,), since)
            if not result.truncated:
                return result.server_time or started
            rows = result.changes.get(entity_type.entity_name, [])
            newest = max((_changed_at(row) for row in rows), default=since)
            if newest <= since:
                return None  # 1,000 changes within one second: CDC can't page past them
            since = newest
        return None

    complete: list[datetime] = []
    for entity_type in CDC_TYPES:
        done = await page(entity_type)
        if done is None:
            break
        complete.append(done)
    else:
        return Finished("cdc", min(complete), applied, frozenset(changed & CACHED_LISTS))
    log.warning("reconcile_cdc_capped", org_id=pull.company.org_id, rounds=rounds)
    applied.add(await full_reread(pull))
    return Finished("full", started, applied, frozenset(changed & CACHED_LISTS))


async def full_reread(pull: PullContext) -> Applied:
    """Every invoice qbsync pushed to the company and QuickBooks still has (paid ones too: a
    payment deleted meanwhile reopens one), read again 3,000 per call; then every record the
    mappings point at."""
    applied = await removals.recheck_all(pull.db, pull.company, pull.client)
    after = ""
    page = IDS_PER_QUERY * QUERIES_PER_BATCH
    while True:
        ids = await _open_invoice_ids(pull, after, page)
        if not ids:
            return applied
        chunks = [ids[start : start + IDS_PER_QUERY] for start in range(0, len(ids), IDS_PER_QUERY)]
        results = await pull.client.batch(
            [
                BatchQuery(
                    bid=str(index),
                    statement=select_statement(
                        "Invoice", f"Id IN {in_list(chunk)}", max_results=IDS_PER_QUERY
                    ),
                )
                for index, chunk in enumerate(chunks)
            ]
        )
        known: dict[tuple[str, str], QboEntity] = {}
        for result in results:
            if result.error is not None:
                raise result.error
            for row in result.rows:
                if row.id:
                    known[("Invoice", row.id)] = row
        now = utcnow()
        changes = [Change("Invoice", qbo_id, "Update", now) for qbo_id in ids]
        for qbo_id in ids:
            if ("Invoice", qbo_id) not in known:
                # Not in the answer: deleted in QuickBooks.
                known[("Invoice", qbo_id)] = Invoice.model_validate(
                    {"Id": qbo_id, "status": "Deleted"}
                )
        applied.add(await apply_changes(pull, changes, known))
        if len(ids) < page:
            return applied
        after = ids[-1]


async def _open_invoice_ids(pull: PullContext, after: str, limit: int) -> list[str]:
    company = pull.company
    async with pull.db.sessions() as session:
        rows = await session.scalars(
            select(SyncRecord.qbo_id)
            .where(
                SyncRecord.org_id == company.org_id,
                SyncRecord.kind == RecordKind.INVOICE,
                SyncRecord.realm_id == company.realm_id,
                SyncRecord.qbo_id.is_not(None),
                SyncRecord.qbo_id > after,
                SyncRecord.payment_status.is_(None)
                | SyncRecord.payment_status.not_in(GONE_STATUSES),
            )
            .order_by(SyncRecord.qbo_id)
            .limit(limit)
        )
        return [str(qbo_id) for qbo_id in rows]


def _changed_at(row: QboEntity) -> datetime:
    stamp = row.meta_data.last_updated_time if row.meta_data else None
    if stamp is None:
        return utcnow()
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _from_cdc(
    groups: dict[str, list[QboEntity]],
) -> tuple[list[Change], dict[tuple[str, str], QboEntity]]:
    changes: list[Change] = []
    known: dict[tuple[str, str], QboEntity] = {}
    for entity, rows in groups.items():
        for row in rows:
            if not row.id:
                continue
            operation = "Delete" if row.is_deleted else "Update"
            changes.append(Change(entity, row.id, operation, _changed_at(row)))
            known[(entity, row.id)] = row
    return changes, known


async def finish(
    db: Database,
    company: Company,
    claimed: Claimed,
    finished: Finished | None,
    calls: dict[str, int],
    error: str | None = None,
) -> None:
    """Store the run's outcome and free the company; a failed run keeps its watermark. A run
    that outlived its lease and was taken over stores nothing: the run after it owns the row."""
    async with db.sessions() as session:
        row = await session.get(
            CdcWatermark, (company.org_id, company.realm_id), with_for_update=True
        )
        if row is None or row.lease_id != claimed.lease_id:
            log.warning("reconcile_lease_lost", org_id=company.org_id)
            return
        row.lease_id = None
        row.lease_until = None
        row.last_finished_at = utcnow()
        row.last_calls = calls
        row.last_error = error
        # A failed run shows what it spent and why it stopped, never the run before's mode
        # and counts; whatever it applied is stored with the records themselves.
        row.last_mode = finished.mode if finished is not None else None
        row.last_applied = finished.applied.as_dict() if finished is not None else None
        if finished is not None:
            row.changed_since = finished.watermark
        await session.commit()


async def due_companies(db: Database, limit: int = 500) -> list[str]:
    """Connected orgs whose reconciliation interval has passed since their last run."""
    now = utcnow()
    async with db.sessions() as session:
        rows = await session.execute(
            select(
                Connection.org_id, SyncSettings.reconcile_interval_minutes, CdcWatermark.last_run_at
            )
            .outerjoin(SyncSettings, SyncSettings.org_id == Connection.org_id)
            .outerjoin(
                CdcWatermark,
                (CdcWatermark.org_id == Connection.org_id)
                & (CdcWatermark.realm_id == Connection.realm_id),
            )
            .where(Connection.status == ConnectionStatus.CONNECTED)
            .order_by(CdcWatermark.last_run_at.asc().nulls_first())
            .limit(limit)
        )
        due: list[str] = []
        for org_id, interval, last_run_at in rows:
            minutes = interval or 60
            if last_run_at is None or last_run_at + timedelta(minutes=minutes) <= now:
                due.append(str(org_id))
        return due


def summary_of(row: CdcWatermark | None) -> dict[str, Any] | None:
    if row is None or row.last_finished_at is None:
        return None
    return {
        "finished_at": row.last_finished_at,
        "mode": row.last_mode,
        "applied": row.last_applied or {},
        "calls": row.last_calls or {},
        "error": row.last_error,
        "watermark": row.changed_since,
    }
