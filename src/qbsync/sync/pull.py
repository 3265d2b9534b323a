"""Applying what changed in QuickBooks: one code path for webhooks and for reconciliation.

A change names an entity; what it means is read from QuickBooks (webhooks carry ids only) unless
the caller already holds the object (CDC returns whole objects, so reconciliation reads again
only what CDC did not give). Reads are metered by Intuit, so they are few and batched: one query
per entity type for all the ids a pull needs, and only ids qbsync follows (its own invoices, the
records its mappings point at).

Nothing is held open across a call to Intuit (R13): reads happen between short sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import cast, or_, select
from sqlalchemy.dialects.postgresql import JSONB

from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.tokens import ConnectionTokens
from qbsync.db import Database
from qbsync.mappings.company import Company
from qbsync.models import RecordKind, RecordStatus, SyncRecord
from qbsync.models.base import utcnow
from qbsync.notify import service as notify
from qbsync.qbo import ApiCall, QboClient, QboEntity
from qbsync.qbo.entities import Invoice, Payment
from qbsync.qbo.query import in_list
from qbsync.queue import JobQueue, unit_of_work
from qbsync.sync import removals
from qbsync.sync.changes import Applied, CallTally, Change
from qbsync.sync.context import PUSH_RETRY
from qbsync.sync.payment_status import (
    InvoiceState,
    deleted,
    derive,
    is_newer,
    linked_invoice_ids,
    linked_payment_ids,
)
from qbsync.sync.pull_schedule import NAME_LISTS
from qbsync.sync.schedule import schedule_push

# Ids per `Id IN (…)` query: a short URL and one page of answers.
IDS_PER_QUERY = 100
PAYMENT_UPDATED: Final = "quickbooks.invoice.payment_updated"


@dataclass
class PullContext:
    db: Database
    queue: JobQueue
    company: Company
    client: QboClient
    calls: CallTally = field(default_factory=CallTally)


def build_pull_context(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    company: Company,
    *,
    limiter_wait_seconds: float,
) -> PullContext:
    tally = CallTally()
    recorder = intuit.config.call_recorder

    async def count(call: ApiCall) -> None:
        if call.metered:
            tally.coreplus += 1
        else:
            tally.core += 1
        if recorder is not None:
            await recorder(call)

    config = replace(
        intuit.config,
        retry=PUSH_RETRY,
        limiter_wait_seconds=limiter_wait_seconds,
        call_recorder=count,
    )
    tokens = ConnectionTokens(db, intuit, company.connection_id, queue)
    client = QboClient(
        intuit.http, config, realm_id=company.realm_id, tokens=tokens, limiter=intuit.limiter
    )
    return PullContext(db=db, queue=queue, company=company, client=client, calls=tally)


async def apply_changes(
    pull: PullContext,
    changes: Sequence[Change],
    known: Mapping[tuple[str, str], QboEntity] | None = None,
) -> Applied:
    """Apply changes in QuickBooks' order (their time, then the entity's SyncToken decides
    what is stored: `payment_status.is_newer`)."""
    known = known or {}
    ordered = sorted(changes, key=lambda change: change.occurred_at)
    applied = await removals.apply(
        pull.db,
        pull.company,
        pull.client,
        [c for c in ordered if c.entity in NAME_LISTS],
        {key: entity for key, entity in known.items() if key[0] in NAME_LISTS},
    )
    applied.add(await _transactions(pull, ordered, known))
    return applied


async def _transactions(
    pull: PullContext, changes: Sequence[Change], known: Mapping[tuple[str, str], QboEntity]
) -> Applied:
    payments: dict[str, Payment] = {}
    invoices: dict[str, Invoice] = {}
    gone_payments: set[str] = set()
    gone_invoices: dict[str, datetime] = {}
    for (entity, entity_id), obj in known.items():
        if entity == "Payment" and isinstance(obj, Payment):
            if obj.is_deleted:
                gone_payments.add(entity_id)
            else:
                payments[entity_id] = obj
        elif entity == "Invoice" and isinstance(obj, Invoice):
            if obj.is_deleted:
                gone_invoices[entity_id] = _stamp(obj) or utcnow()
            else:
                invoices[entity_id] = obj
    touched_payments: set[str] = set(payments) | gone_payments
    invoice_ids: set[str] = set(invoices) | set(gone_invoices)
    for change in changes:
        if change.entity == "Payment":
            touched_payments.add(change.entity_id)
            if change.operation == "Delete":
                gone_payments.add(change.entity_id)
        elif change.entity == "Invoice":
            invoice_ids.add(change.entity_id)
            if change.operation == "Delete":
                gone_invoices.setdefault(change.entity_id, change.occurred_at)
    if not touched_payments and not invoice_ids:
        return Applied()
    to_read = touched_payments - set(payments) - gone_payments
    found = await _read(pull.client, Payment, to_read)
    payments.update(found)
    gone_payments |= to_read - set(found)
    for payment in payments.values():
        invoice_ids |= linked_invoice_ids(payment)
    # Invoices a changed payment used to be applied to: a deleted or re-split payment leaves
    # them with a balance only a fresh read shows.
    ours = await _our_invoices(pull, invoice_ids, touched_payments)
    if not ours:
        return Applied()
    to_read = set(ours) - set(invoices) - set(gone_invoices)
    found_invoices = await _read(pull.client, Invoice, to_read)
    invoices.update(found_invoices)
    now = utcnow()
    for missing in to_read - set(found_invoices):
        # Not in a query's answer: QuickBooks deleted it (voided invoices are still there).
        gone_invoices.setdefault(missing, now)
    needed = {
        pid for qbo_id in ours if qbo_id in invoices for pid in linked_payment_ids(invoices[qbo_id])
    }
    payments.update(await _read(pull.client, Payment, needed - set(payments) - gone_payments))
    home = pull.company.home_currency
    states: list[InvoiceState] = []
    for qbo_id in sorted(ours):
        if qbo_id in invoices:
            states.append(derive(invoices[qbo_id], payments, home))
        else:
            states.append(deleted(qbo_id, None, gone_invoices.get(qbo_id, now)))
    return await store_states(pull, states)


async def _read(
    client: QboClient, entity_type: type[Invoice] | type[Payment], ids: Iterable[str]
) -> dict[str, Any]:
    wanted = sorted(ids)
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), IDS_PER_QUERY):
        chunk = wanted[start : start + IDS_PER_QUERY]
        for row in await client.query_all(entity_type, f"Id IN {in_list(chunk)}"):
            if row.id:
                found[row.id] = row
    return found


async def _our_invoices(
    pull: PullContext, invoice_ids: set[str], payment_ids: set[str]
) -> dict[str, Any]:
    """qbo id → record id of the invoices qbsync pushed to this company among `invoice_ids`,
    and of those whose stored payments include one of `payment_ids`."""
    company = pull.company
    async with pull.db.sessions() as session:
        mine = select(SyncRecord.qbo_id, SyncRecord.id, SyncRecord.payment_state).where(
            SyncRecord.org_id == company.org_id,
            SyncRecord.kind == RecordKind.INVOICE,
            SyncRecord.realm_id == company.realm_id,
            SyncRecord.qbo_id.is_not(None),
        )
        found = {
            qbo_id: record_id
            for qbo_id, record_id, _ in await session.execute(
                mine.where(SyncRecord.qbo_id.in_(sorted(invoice_ids)))
            )
        }
        if payment_ids:
            state = cast(SyncRecord.payment_state, JSONB)
            holding = or_(
                *(
                    state.contains({"payments": [{"qbo_payment_id": payment_id}]})
                    for payment_id in sorted(payment_ids)
                )
            )
            for qbo_id, record_id, _ in await session.execute(mine.where(holding)):
                found[qbo_id] = record_id
    return found


async def store_states(pull: PullContext, states: Sequence[InvoiceState]) -> Applied:
    """Store each state that is not older than what is stored; tell the platform of each one
    that differs from what it was last told. One transaction, rows locked in qbo id order."""
    applied = Applied()
    if not states:
        return applied
    company = pull.company
    by_id = {state.qbo_invoice_id: state for state in states}
    async with unit_of_work(pull.db, pull.queue) as session:
        records = (
            await session.scalars(
                select(SyncRecord)
                .where(
                    SyncRecord.org_id == company.org_id,
                    SyncRecord.kind == RecordKind.INVOICE,
                    SyncRecord.realm_id == company.realm_id,
                    SyncRecord.qbo_id.in_(sorted(by_id)),
                )
                .order_by(SyncRecord.qbo_id)
                .with_for_update()
            )
        ).all()
        platform_payments = await _platform_payments(
            session,
            company.org_id,
            {p.qbo_payment_id for state in states for p in state.payments},
        )
        for record in records:
            state = by_id[record.qbo_id or ""]
            if not is_newer(state, record.payment_state):
                continue
            stored = record.payment_state
            if state.status == "deleted":
                # Nothing is left to read: the currency is the last one seen, else the
                # platform's own.
                known_currency = {"currency": record.snapshot.get("currency")}
                state = deleted(state.qbo_invoice_id, stored or known_currency, state.as_of)
            if _mark_removed(record, state):
                applied.removed_in_quickbooks += 1
                if record.status is RecordStatus.PENDING:
                    # A platform version waiting to go now fails, visibly, rather than re-create.
                    schedule_push(session, company.org_id)
            record.payment_state = state.document()
            record.payment_status = state.status
            if state.same_as(stored):
                continue
            applied.invoices_updated += 1
            applied.events_sent += 1
            notify.record(
                session,
                company.org_id,
                PAYMENT_UPDATED,
                _event_data(record.platform_id, state, platform_payments),
                entity_key=notify.entity_key(RecordKind.INVOICE.value, record.platform_id),
            )
    return applied


def _mark_removed(record: SyncRecord, state: InvoiceState) -> bool:
    """An invoice QuickBooks voided or deleted while the platform still wants it: a later
    platform change must not create it again without a person saying so."""
    if state.status not in ("voided", "deleted") or record.operation != "upsert":
        return False
    if record.removed_in_quickbooks is not None:
        return False
    record.removed_in_quickbooks = state.status
    record.removed_in_quickbooks_at = state.as_of
    return True


async def _platform_payments(session: Any, org_id: str, qbo_ids: set[str]) -> dict[str, str]:
    if not qbo_ids:
        return {}
    rows = await session.execute(
        select(SyncRecord.qbo_id, SyncRecord.platform_id).where(
            SyncRecord.org_id == org_id,
            SyncRecord.kind == RecordKind.PAYMENT,
            SyncRecord.qbo_id.in_(sorted(qbo_ids)),
        )
    )
    return {str(row[0]): str(row[1]) for row in rows}


def _event_data(
    invoice_id: str, state: InvoiceState, platform_payments: Mapping[str, str]
) -> dict[str, Any]:
    document = state.document()
    document.pop("version")
    for payment in document["payments"]:
        payment["platform_payment_id"] = platform_payments.get(payment["qbo_payment_id"])
    return {"invoice_id": invoice_id, **document}


def _stamp(entity: QboEntity) -> datetime | None:
    stamp = entity.meta_data.last_updated_time if entity.meta_data else None
    if stamp is None:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
