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
    # The latest Create or Update of each invoice by itself (not through a payment); any
    # other change (Void) always means a read.
    changed_at: dict[str, datetime] = {}
    must_read: set[str] = set()
    for change in changes:
        if change.entity == "Payment":
            touched_payments.add(change.entity_id)
            if change.operation == "Delete":
                gone_payments.add(change.entity_id)
        elif change.entity == "Invoice":
            invoice_ids.add(change.entity_id)
            if change.operation == "Delete":
                gone_invoices.setdefault(change.entity_id, change.occurred_at)
            elif change.operation not in ("Create", "Update"):
                must_read.add(change.entity_id)
            else:
                moment = changed_at.get(change.entity_id)
                changed_at[change.entity_id] = max(moment or change.occurred_at, change.occurred_at)
    if not touched_payments and not invoice_ids:
        return Applied()
    to_read = touched_payments - set(payments) - gone_payments
    found = await _read(pull.client, Payment, to_read)
    payments.update(found)
    gone_payments |= to_read - set(found)
    paid_into: set[str] = set()
    for payment in payments.values():
        paid_into |= linked_invoice_ids(payment)
    invoice_ids |= paid_into
    # Invoices a changed payment used to be applied to: a deleted or re-split payment leaves
    # them with a balance only a fresh read shows.
    ours, holding = await _our_invoices(pull, invoice_ids, touched_payments)
    # An invoice's own webhook for a write qbsync made (its Create, its Update) tells nothing
    # the write's answer did not: no read (P7), unless a payment touched it too.
    echoes = {
        qbo_id
        for qbo_id, moment in changed_at.items()
        if qbo_id in ours
        and qbo_id not in paid_into | holding | must_read | set(gone_invoices)
        and _written_since(ours[qbo_id], moment)
    }
    for qbo_id in echoes:
        del ours[qbo_id]
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


def _written_since(payment_state: dict[str, Any] | None, moment: datetime) -> bool:
    """Whether qbsync's own last write of the invoice is at least as new as `moment`.

    QuickBooks stamps a document in whole seconds and its webhook to the millisecond or
    finer, so the webhook's time is compared by its second. A person's change in the very
    second of qbsync's write is then left to the reconciliation, whose CDC answer holds the
    invoice itself (no read).
    """
    written = (payment_state or {}).get("written_at")
    if not isinstance(written, str):
        return False
    try:
        return datetime.fromisoformat(written) >= moment.replace(microsecond=0)
    except ValueError:
        return False


async def _our_invoices(
    pull: PullContext, invoice_ids: set[str], payment_ids: set[str]
) -> tuple[dict[str, dict[str, Any] | None], set[str]]:
    """qbo id → stored payment state of the invoices qbsync pushed to this company among
    `invoice_ids` and of those whose stored payments include one of `payment_ids`; and the
    ids of the latter."""
    company = pull.company
    async with pull.db.sessions() as session:
        mine = select(SyncRecord.qbo_id, SyncRecord.payment_state).where(
            SyncRecord.org_id == company.org_id,
            SyncRecord.kind == RecordKind.INVOICE,
            SyncRecord.realm_id == company.realm_id,
            SyncRecord.qbo_id.is_not(None),
        )
        found: dict[str, dict[str, Any] | None] = {
            str(qbo_id): stored
            for qbo_id, stored in await session.execute(
                mine.where(SyncRecord.qbo_id.in_(sorted(invoice_ids)))
            )
        }
        holding: set[str] = set()
        if payment_ids:
            state = cast(SyncRecord.payment_state, JSONB)
            holds_one = or_(
                *(
                    state.contains({"payments": [{"qbo_payment_id": payment_id}]})
                    for payment_id in sorted(payment_ids)
                )
            )
            for qbo_id, stored in await session.execute(mine.where(holds_one)):
                found[str(qbo_id)] = stored
                holding.add(str(qbo_id))
    return found, holding


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
            session, company, {p.qbo_payment_id for state in states for p in state.payments}
        )
        for record in records:
            state = by_id[record.qbo_id or ""]
            if not is_newer(state, record.payment_state):
                continue
            stored = record.payment_state
            if state.status == "deleted":
                # Nothing is left to read: the currency is the last one seen, else the
                # platform's own.
                currency = (stored or {}).get("currency") or record.snapshot.get("currency")
                state = deleted(state.qbo_invoice_id, {"currency": currency}, state.as_of)
            if _mark_removed(record, state):
                applied.removed_in_quickbooks += 1
                if record.status is RecordStatus.PENDING:
                    # A platform version waiting to go now fails, visibly, rather than re-create.
                    schedule_push(session, company.org_id)
            record.payment_state = _kept(state.document(), stored)
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


def _kept(document: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    """The new state, keeping when qbsync itself last wrote the invoice
    (`payment_status.with_write`)."""
    if stored is not None and "written_at" in stored:
        document["written_at"] = stored["written_at"]
    return document


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


async def _platform_payments(session: Any, company: Company, qbo_ids: set[str]) -> dict[str, str]:
    """QuickBooks payment id → the platform's payment qbsync created it for, in this company
    only: ids are small numbers in each company, and an org that switched companies keeps the
    old one's records."""
    if not qbo_ids:
        return {}
    rows = await session.execute(
        select(SyncRecord.qbo_id, SyncRecord.platform_id).where(
            SyncRecord.org_id == company.org_id,
            SyncRecord.realm_id == company.realm_id,
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
