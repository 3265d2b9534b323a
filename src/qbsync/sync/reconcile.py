"""Reconciliation of one company: Change Data Capture since the watermark, applied through the
same code path as webhooks, so a day of lost webhooks still brings every status (R10).

Its cost follows what changed, not what exists (P5): one CDC call for every entity qbsync
follows, plus the reads CDC did not answer (payments of a changed invoice). Only a watermark
older than CDC reaches (30 days) re-reads the open invoices qbsync knows, in batches of
queries. The run also re-drives work whose jobs Redis lost (R5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select

from qbsync.db import Database
from qbsync.mappings.company import Company
from qbsync.models import Connection, ConnectionStatus, RecordKind, SyncRecord, SyncSettings
from qbsync.models.base import utcnow
from qbsync.models.cdc_watermark import CdcWatermark
from qbsync.qbo import BatchQuery, QboEntity
from qbsync.qbo.entities import Account, Customer, Invoice, Item, Payment, Vendor
from qbsync.qbo.query import in_list
from qbsync.qbo.query import select as select_statement
from qbsync.settings import ReconcileSettings
from qbsync.sync.changes import Applied, Change
from qbsync.sync.pull import PullContext, apply_changes

log = structlog.get_logger(__name__)
# Every entity qbsync follows, in one CDC call.
CDC_TYPES: tuple[type[QboEntity], ...] = (Invoice, Payment, Customer, Item, Account, Vendor)
# Open invoices are re-read 100 ids per query and 30 queries per batch call.
IDS_PER_QUERY = 100
QUERIES_PER_BATCH = 30
# Stay this far inside Intuit's 30 days: a watermark right at the edge is refused by the time
# the call arrives.
WINDOW_MARGIN = timedelta(hours=1)
OPEN_STATUSES = ("unpaid", "partially_paid")
CACHED_LISTS = frozenset({"Account", "Item", "Customer", "Vendor"})


@dataclass(frozen=True)
class Claimed:
    changed_since: datetime


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
        row = await session.get(
            CdcWatermark, (company.org_id, company.realm_id), with_for_update=True
        )
        if row is None:
            connected_at = await session.scalar(
                select(Connection.connected_at).where(Connection.id == company.connection_id)
            )
            row = CdcWatermark(
                org_id=company.org_id,
                realm_id=company.realm_id,
                # QuickBooks only notifies changes after the connection, and qbsync only
                # follows what it pushed since: nothing older is news.
                changed_since=connected_at or now,
            )
            session.add(row)
        elif row.lease_until is not None and row.lease_until > now:
            await session.rollback()
            return None
        row.lease_until = now + timedelta(seconds=settings.lease_seconds)
        row.last_run_at = now
        since = row.changed_since
        await session.commit()
    return Claimed(changed_since=since)


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
    for _ in range(settings.max_cdc_rounds):
        result = await pull.client.cdc(CDC_TYPES, read_from)
        changes, known = _from_cdc(result.changes)
        changed |= {name for name, rows in result.changes.items() if rows}
        applied.add(await apply_changes(pull, changes, known))
        if not result.truncated:
            watermark = result.server_time or started
            return Finished("cdc", watermark, applied, frozenset(changed & CACHED_LISTS))
        # Capped at 1,000 objects, oldest first: go on from the newest one seen. The same
        # second may be read twice; applying a change twice changes nothing.
        newest = max((change.occurred_at for change in changes), default=read_from)
        if newest <= read_from:
            break
        read_from = newest
    log.warning("reconcile_cdc_capped", org_id=pull.company.org_id)
    applied.add(await full_reread(pull))
    return Finished("full", started, applied, frozenset(changed & CACHED_LISTS))


async def full_reread(pull: PullContext) -> Applied:
    """Every open invoice qbsync pushed to the company, read again, 3,000 per call."""
    applied = Applied()
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
                SyncRecord.payment_status.is_(None) | SyncRecord.payment_status.in_(OPEN_STATUSES),
            )
            .order_by(SyncRecord.qbo_id)
            .limit(limit)
        )
        return [str(qbo_id) for qbo_id in rows]


def _from_cdc(
    groups: dict[str, list[QboEntity]],
) -> tuple[list[Change], dict[tuple[str, str], QboEntity]]:
    changes: list[Change] = []
    known: dict[tuple[str, str], QboEntity] = {}
    for entity, rows in groups.items():
        for row in rows:
            if not row.id:
                continue
            stamp = row.meta_data.last_updated_time if row.meta_data else None
            when = (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)) if stamp else utcnow()
            changes.append(Change(entity, row.id, "Delete" if row.is_deleted else "Update", when))
            known[(entity, row.id)] = row
    return changes, known


async def finish(
    db: Database,
    company: Company,
    finished: Finished | None,
    calls: dict[str, int],
    error: str | None = None,
) -> None:
    """Store the run's outcome and free the company; a failed run keeps its watermark."""
    async with db.sessions() as session:
        row = await session.get(
            CdcWatermark, (company.org_id, company.realm_id), with_for_update=True
        )
        if row is None:
            return
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
